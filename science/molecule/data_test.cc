// Molecule featurisation, the readers (CSV, .smi + activity, SDF), splits and batches.
#include "science/molecule/data.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::science::molecule {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::zt::IsOk;
using ::zt::StatusIs;

std::string Testdata(const std::string& f) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/science/molecule/testdata/" + f;
}

MolGraph Graph(const std::string& smiles, const FeaturizeOptions& options = {}) {
  absl::StatusOr<MolGraph> g = Featurize(smiles, options);
  EXPECT_THAT(g, IsOk()) << smiles;
  return g.ok() ? *std::move(g) : MolGraph{};
}

// Value indices (id minus the column's offset) of atom i.
std::vector<int> AtomValues(const MolGraph& g, int i) {
  std::vector<int> v;
  for (int c = 0; c < kNumAtomFeatures; ++c) {
    v.push_back(static_cast<int>(g.atoms.at(i * kNumAtomFeatures + c)) - kAtomFeatureOffset[c]);
  }
  return v;
}

// Value indices of the bond between atoms i and j.
std::vector<int> BondValues(const MolGraph& g, int i, int j) {
  std::vector<int> v;
  for (int c = 0; c < kNumBondFeatures; ++c) {
    v.push_back(static_cast<int>(g.bonds.at((i * g.num_atoms + j) * kNumBondFeatures + c)) - kBondFeatureOffset[c]);
  }
  return v;
}

std::vector<std::int64_t> BondIds(const MolGraph& g, int i, int j) {
  auto begin = g.bonds.begin() + (i * g.num_atoms + j) * kNumBondFeatures;
  return {begin, begin + kNumBondFeatures};
}

std::int64_t Path(const MolGraph& g, int i, int j) { return g.path.at(i * g.num_atoms + j); }
float Distance(const MolGraph& g, int i, int j) { return g.distance.at(i * g.num_atoms + j); }

// Value indices used below: element H0 B1 C2 N3 O4 F5 ... other 13; charge -2..+2 -> 0..4, other
// 5; hybridisation S0 SP1 SP2 2 SP3 3; chirality none0 CW1 CCW2.
TEST(Featurize, EthanolAtomIdsAreOffsetIntoOneVocabulary) {
  MolGraph g = Graph("CCO");
  ASSERT_EQ(g.num_atoms, 3);
  EXPECT_EQ(g.smiles, "CCO");
  ASSERT_THAT(g.atoms, SizeIs(3 * kNumAtomFeatures));
  // C: element C, degree 1, charge 0, SP3, not aromatic, 3 H, no chirality, not in a ring.
  EXPECT_THAT(std::vector<std::int64_t>(g.atoms.begin(), g.atoms.begin() + 8),
              ElementsAre(3, 16, 23, 30, 34, 39, 41, 45));
  // O: element O, degree 1, charge 0, SP3, not aromatic, 1 H.
  EXPECT_THAT(AtomValues(g, 2), ElementsAre(4, 1, 2, 3, 0, 1, 0, 0));
  EXPECT_THAT(AtomValues(g, 1), ElementsAre(2, 2, 2, 3, 0, 2, 0, 0));
  for (std::int64_t id : g.atoms) {
    EXPECT_GT(id, 0);
    EXPECT_LT(id, kAtomVocab);
  }
}

TEST(Featurize, BenzeneIsAromaticRing) {
  MolGraph g = Graph("c1ccccc1");
  ASSERT_EQ(g.num_atoms, 6);
  for (int i = 0; i < 6; ++i) EXPECT_THAT(AtomValues(g, i), ElementsAre(2, 2, 2, 2, 1, 1, 0, 1)) << i;
  // Aromatic, conjugated, in a ring, no stereo.
  EXPECT_THAT(BondValues(g, 0, 1), ElementsAre(3, 1, 1, 0));
  EXPECT_EQ(BondIds(g, 0, 1), BondIds(g, 1, 0));
  EXPECT_THAT(BondIds(g, 0, 3), ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(BondIds(g, 2, 2), ElementsAre(0, 0, 0, 0));
}

TEST(Featurize, ChargesAndUncommonElements) {
  MolGraph ammonium = Graph("C[N+](C)(C)C");
  EXPECT_THAT(AtomValues(ammonium, 1), ElementsAre(3, 4, 3, 3, 0, 0, 0, 0));
  MolGraph acetate = Graph("CC(=O)[O-]");
  EXPECT_THAT(AtomValues(acetate, 3), ElementsAre(4, 1, 1, 2, 0, 0, 0, 0));
  EXPECT_THAT(AtomValues(acetate, 2), ElementsAre(4, 1, 2, 2, 0, 0, 0, 0));
  MolGraph iron = Graph("[Fe+3]");
  EXPECT_EQ(AtomValues(iron, 0)[0], 13);  // element: other
  EXPECT_EQ(AtomValues(iron, 0)[2], 5);   // charge: other
  MolGraph bromide = Graph("Brc1ccccc1");
  EXPECT_EQ(AtomValues(bromide, 0)[0], 11);
}

TEST(Featurize, ChiralTags) {
  EXPECT_EQ(AtomValues(Graph("N[C@@H](C)C(=O)O"), 1)[6], 1);  // CW
  EXPECT_EQ(AtomValues(Graph("N[C@H](C)C(=O)O"), 1)[6], 2);   // CCW
  EXPECT_EQ(AtomValues(Graph("NC(C)C(=O)O"), 1)[6], 0);
  EXPECT_EQ(Graph("N[C@@H](C)C(=O)O").smiles, "C[C@H](N)C(=O)O");
}

TEST(Featurize, DoubleBondStereo) {
  // F/C=C/F is E (trans), F/C=C\F is Z (cis): type double, not conjugated, not in a ring.
  EXPECT_THAT(BondValues(Graph("F/C=C/F"), 1, 2), ElementsAre(1, 0, 0, 2));
  EXPECT_THAT(BondValues(Graph("F/C=C\\F"), 1, 2), ElementsAre(1, 0, 0, 1));
  EXPECT_THAT(BondValues(Graph("FC=CF"), 1, 2), ElementsAre(1, 0, 0, 0));
  EXPECT_THAT(BondValues(Graph("F/C=C/F"), 0, 1), ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(BondValues(Graph("C#N"), 0, 1)[0], 2);
  EXPECT_THAT(BondValues(Graph("C=CC=C"), 1, 2), ElementsAre(0, 1, 0, 0));  // conjugated single
}

TEST(Featurize, ShortestPathsOfChainRingAndFragments) {
  MolGraph chain = Graph("CCCCC");
  EXPECT_EQ(Path(chain, 0, 0), 0);
  EXPECT_EQ(Path(chain, 0, 4), 4);
  EXPECT_EQ(Path(chain, 3, 1), 2);
  MolGraph ring = Graph("C1CCCCC1");
  EXPECT_EQ(Path(ring, 0, 5), 1);
  EXPECT_EQ(Path(ring, 0, 3), 3);
  EXPECT_EQ(Path(ring, 1, 5), 2);
  MolGraph salt = Graph("CC.O");
  EXPECT_EQ(Path(salt, 0, 2), kMaxPathDistance + 1);
  MolGraph long_chain = Graph(std::string(20, 'C'));
  EXPECT_EQ(Path(long_chain, 0, 16), 16);
  EXPECT_EQ(Path(long_chain, 0, 19), kMaxPathDistance);  // clipped
  EXPECT_THAT(long_chain.distance, IsEmpty());
}

TEST(Featurize, ConformerDistancesArePlausibleAndReproducible) {
  FeaturizeOptions options;
  options.conformers = true;
  options.seed = 42;
  MolGraph ethanol = Graph("CCO", options);
  ASSERT_THAT(ethanol.distance, SizeIs(9));
  EXPECT_NEAR(Distance(ethanol, 0, 1), 1.5, 0.1);   // C-C
  EXPECT_NEAR(Distance(ethanol, 1, 2), 1.42, 0.1);  // C-O
  EXPECT_NEAR(Distance(ethanol, 0, 2), 2.4, 0.2);   // across the angle
  EXPECT_EQ(Distance(ethanol, 1, 1), 0.0f);
  EXPECT_EQ(Distance(ethanol, 0, 1), Distance(ethanol, 1, 0));

  MolGraph a = Graph("CC(=O)Oc1ccccc1C(=O)O", options), b = Graph("CC(=O)Oc1ccccc1C(=O)O", options);
  ASSERT_THAT(a.distance, SizeIs(13 * 13));
  EXPECT_EQ(a.distance, b.distance);
  EXPECT_NEAR(Distance(a, 4, 5), 1.39, 0.05);  // aromatic C-C
}

TEST(Featurize, InvalidSmilesSayWhy) {
  const FeaturizeOptions options;
  EXPECT_THAT(Featurize("C1CC", options),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("parse"), HasSubstr("unclosed ring"))));
  EXPECT_THAT(Featurize("CC(C", options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unclosed '('")));
  EXPECT_THAT(Featurize("xyz", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected character 'x'")));
  EXPECT_THAT(Featurize("C(C)(C)(C)(C)C", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Explicit valence")));
  EXPECT_THAT(Featurize("c1cccc1", options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kekulize")));
  EXPECT_THAT(Featurize("  ", options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  FeaturizeOptions small;
  small.max_atoms = 2;
  EXPECT_THAT(Featurize("CCO", small),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too many atoms: 3 heavy atoms")));
}

TEST(ReadCsv, QuotesMissingTargetsInvalidRecordsAndDuplicates) {
  const std::string path = Testdata("molecules.csv");
  absl::StatusOr<Dataset> d = ReadCsv(path, "smiles", {"solubility, log", "activity"}, {});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->read, 10);
  EXPECT_EQ(d->invalid, 4);     // bad valence, unclosed ring, non-numeric target, short row
  EXPECT_EQ(d->duplicates, 1);  // OCC is CCO
  EXPECT_THAT(d->target_names, ElementsAre("solubility, log", "activity"));
  ASSERT_THAT(d->mols, SizeIs(5));
  std::vector<std::string> smiles;
  for (const MolGraph& g : d->mols) smiles.push_back(g.smiles);
  EXPECT_THAT(smiles, ElementsAre("CCO", "c1ccccc1", "CC(=O)O", "C[C@H](N)C(=O)O", "c1ccncc1"));
  EXPECT_THAT(d->mols[0].targets, ElementsAre(-0.77f, 1.0f));
  EXPECT_FLOAT_EQ(d->mols[1].targets[0], -1.64f);
  EXPECT_TRUE(std::isnan(d->mols[1].targets[1]));  // empty cell
  EXPECT_TRUE(std::isnan(d->mols[2].targets[1]));  // nan
  EXPECT_THAT(d->mols[4].targets, ElementsAre(0.5f, 1.0f));
  EXPECT_THAT(d->first_errors,
              ElementsAre(StartsWith(path + ":4: C(C)(C)(C)(C)C: RDKit sanitisation failed: Explicit valence"),
                          StartsWith(path + ":6: C1CC: SMILES parse error: unclosed ring bond 1"),
                          path + ":9: F/C=C/F: target \"activity\" is not a number: \"abc\"",
                          path + ":12: CC: 3 fields, the header has 4"));
  EXPECT_THAT(d->description, AllOf(HasSubstr("10 records, 5 molecules (4 invalid, 1 duplicates)"), HasSubstr("2D")));
}

TEST(ReadCsv, EmptySmilesColumnPicksTheSmilesHeader) {
  absl::StatusOr<Dataset> d = ReadCsv(Testdata("molecules.csv"), "", {}, {});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->invalid, 3);  // no target columns, so "abc" no longer matters; the short row still does
  EXPECT_EQ(d->mols[0].smiles, "CCO");
  EXPECT_THAT(d->mols[0].targets, IsEmpty());
}

TEST(ReadCsv, ErrorsNameTheFileAndTheColumn) {
  const std::string path = Testdata("molecules.csv");
  EXPECT_THAT(ReadCsv(path, "smiles", {"logP"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("no column \"logP\""),
                             HasSubstr("the header has: id, smiles, solubility, log, activity"))));
  EXPECT_THAT(ReadCsv("/nonexistent/mols.csv", "smiles", {}, {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/mols.csv")));

  const std::string bad = std::string(std::getenv("TEST_TMPDIR")) + "/unterminated.csv";
  std::ofstream(bad) << "smiles,y\nCCO,1\nCCC,\"2\n";
  EXPECT_THAT(ReadCsv(bad, "smiles", {"y"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad + ":3:5: quoted field has no closing quote")));
}

TEST(ReadSmi, JoinsActivitiesByName) {
  const std::string path = Testdata("molecules.smi");
  absl::StatusOr<Dataset> d = ReadSmi(path, Testdata("molecules_act.csv"), "Name", {"Act"}, {});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->read, 6);
  EXPECT_EQ(d->invalid, 2);  // C1CC, and mol5 without an activity row
  EXPECT_EQ(d->duplicates, 1);
  ASSERT_THAT(d->mols, SizeIs(3));
  EXPECT_EQ(d->mols[0].name, "mol1");
  EXPECT_THAT(d->mols[0].targets, ElementsAre(5.5f));
  EXPECT_EQ(d->mols[1].name, "mol2");
  EXPECT_THAT(d->mols[1].targets, ElementsAre(6.1f));
  EXPECT_EQ(d->mols[2].name, "mol6");
  EXPECT_EQ(d->mols[2].smiles, "CCN(CC)CC");
  EXPECT_THAT(d->mols[2].targets, ElementsAre(4.2f));
  EXPECT_THAT(d->first_errors, ElementsAre(StartsWith(path + ":4: C1CC: SMILES parse error"),
                                           path + ":6: CC(=O)Nc1ccc(O)cc1: no activity"));

  // Without activities: every parsable molecule, no targets.
  absl::StatusOr<Dataset> plain = ReadSmi(path, "", "", {}, {});
  ASSERT_THAT(plain, IsOk());
  EXPECT_EQ(plain->invalid, 1);
  EXPECT_THAT(plain->mols, SizeIs(4));
  EXPECT_THAT(plain->mols[0].targets, IsEmpty());

  // ReadMolecules finds molecules_act.csv beside molecules.smi.
  absl::StatusOr<Dataset> by_extension = ReadMolecules(path, "", {"Act"}, {});
  ASSERT_THAT(by_extension, IsOk());
  EXPECT_THAT(by_extension->mols, SizeIs(3));
  EXPECT_THAT(ReadSmi(path, Testdata("molecules_act.csv"), "Id", {"Act"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no column \"Id\"; the header has: Name, Act")));
}

TEST(ReadSdf, PropertiesBecomeTargets) {
  const std::string path = Testdata("molecules.sdf");
  absl::StatusOr<Dataset> d = ReadSdf(path, {"logS", "pIC50"}, {});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->read, 4);
  EXPECT_EQ(d->invalid, 1);
  EXPECT_EQ(d->duplicates, 0);
  ASSERT_THAT(d->mols, SizeIs(3));
  EXPECT_EQ(d->mols[0].name, "ethanol");
  EXPECT_EQ(d->mols[0].smiles, "CCO");
  EXPECT_THAT(d->mols[0].targets, ElementsAre(1.1f, 5.2f));
  EXPECT_EQ(d->mols[1].name, "benzoic_acid");
  EXPECT_EQ(d->mols[1].smiles, "O=C(O)c1ccccc1");
  EXPECT_FLOAT_EQ(d->mols[1].targets[0], -1.55f);
  EXPECT_TRUE(std::isnan(d->mols[1].targets[1]));  // no pIC50 property
  EXPECT_EQ(d->mols[2].name, "aspirin");
  EXPECT_TRUE(std::isnan(d->mols[2].targets[1]));  // NA
  EXPECT_THAT(d->first_errors, ElementsAre(AllOf(StartsWith(path + ":45: bad_valence: RDKit cannot read the record"),
                                                 HasSubstr("valence"))));
  // Through ReadMolecules, with 3D distances.
  FeaturizeOptions options;
  options.conformers = true;
  absl::StatusOr<Dataset> d3 = ReadMolecules(path, "", {"logS"}, options);
  ASSERT_THAT(d3, IsOk());
  ASSERT_THAT(d3->mols, SizeIs(3));
  EXPECT_THAT(d3->mols[1].distance, SizeIs(81));
}

TEST(ReadMolecules, UnknownExtensionListsTheKnownOnes) {
  EXPECT_THAT(ReadMolecules("data/mols.mol2", "smiles", {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("data/mols.mol2"), HasSubstr(".csv"), HasSubstr(".smi"), HasSubstr(".sdf"))));
  EXPECT_THAT(ReadMolecules("/nonexistent/x.sdf", "", {}, {}), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST(Scaffold, MurckoScaffolds) {
  EXPECT_EQ(ScaffoldSmiles("CCO"), "");
  EXPECT_EQ(ScaffoldSmiles("CC(=O)Oc1ccccc1C(=O)O"), "c1ccccc1");
  EXPECT_EQ(ScaffoldSmiles("Cc1ccc(CC2CCNCC2)cc1"), ScaffoldSmiles("OCc1ccc(CC2CCN(C)CC2)cc1"));
  EXPECT_EQ(ScaffoldSmiles("Cc1ccc(CC2CCNCC2)cc1"), "c1ccc(CC2CCNCC2)cc1");
  EXPECT_EQ(ScaffoldSmiles("C[C@H](N)c1ccccc1"), "c1ccccc1");
}

// 40 molecules: three large scaffold groups (8, 6, 5), 18 single-molecule scaffolds and three
// acyclic ones (scaffold "").  With 0.8/0.1/0.1 the valid and test parts hold 4 each.
std::vector<MolGraph> ScaffoldSet() {
  std::vector<std::string> smiles;
  for (const char* tail : {"", "C", "CC", "CCO", "CN", "CCCl", "OC", "CC(C)C"})
    smiles.push_back(std::string(tail) + "c1ccccc1");
  for (const char* tail : {"", "C", "CC", "CCO", "CN", "OC"}) smiles.push_back(std::string(tail) + "c1ccncc1");
  for (const char* tail : {"", "C", "CC", "CCO", "CN"}) smiles.push_back(std::string(tail) + "c1ccc2ccccc2c1");
  for (int k = 0; k < 10; ++k) smiles.push_back("c1ccccc1" + std::string(k, 'C') + "C2CCCCC2");
  for (int r = 3; r <= 10; ++r) smiles.push_back("C1" + std::string(r - 1, 'C') + "1");
  for (const char* acyclic : {"CCO", "CCN", "CCCC"}) smiles.push_back(acyclic);
  std::vector<MolGraph> mols(smiles.size());
  for (std::size_t i = 0; i < smiles.size(); ++i) mols[i].smiles = smiles[i];
  return mols;
}

TEST(Split, ScaffoldSplitKeepsScaffoldsTogetherAndIsDeterministic) {
  const std::vector<MolGraph> mols = ScaffoldSet();
  const Split s = ScaffoldSplit(mols, 0.8, 0.1, 3);
  std::map<std::string, int> part_of;
  std::set<std::int64_t> all;
  int part = 0;
  for (const std::vector<std::int64_t>* p : {&s.train, &s.valid, &s.test}) {
    for (std::int64_t i : *p) {
      EXPECT_TRUE(all.insert(i).second) << "index " << i << " twice";
      auto [it, added] = part_of.emplace(ScaffoldSmiles(mols[i].smiles), part);
      EXPECT_EQ(it->second, part) << "scaffold " << it->first << " in two parts";
    }
    ++part;
  }
  EXPECT_EQ(all.size(), mols.size());
  ASSERT_EQ(mols.size(), 40u);
  EXPECT_EQ(part_of.size(), 3u + 18u + 1u);
  EXPECT_THAT(s.train, SizeIs(32));
  EXPECT_THAT(s.valid, SizeIs(4));
  EXPECT_THAT(s.test, SizeIs(4));
  const Split again = ScaffoldSplit(mols, 0.8, 0.1, 3);
  EXPECT_EQ(again.train, s.train);
  EXPECT_EQ(again.valid, s.valid);
  EXPECT_EQ(again.test, s.test);
}

TEST(Split, RandomSplitSizesAndSeeds) {
  const Split s = RandomSplit(100, 0.8, 0.1, 7);
  EXPECT_THAT(s.train, SizeIs(80));
  EXPECT_THAT(s.valid, SizeIs(10));
  EXPECT_THAT(s.test, SizeIs(10));
  std::set<std::int64_t> all(s.train.begin(), s.train.end());
  all.insert(s.valid.begin(), s.valid.end());
  all.insert(s.test.begin(), s.test.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 99);
  EXPECT_EQ(RandomSplit(100, 0.8, 0.1, 7).train, s.train);
  EXPECT_NE(RandomSplit(100, 0.8, 0.1, 8).train, s.train);
  const Split odd = RandomSplit(7, 0.8, 0.1, 1);  // floor(5.6) = 5, floor(6.3) = 6
  EXPECT_THAT(odd.train, SizeIs(5));
  EXPECT_THAT(odd.valid, SizeIs(1));
  EXPECT_THAT(odd.test, SizeIs(1));
}

TEST(MakeBatch, PadsToTheLargestGraph) {
  MolGraph ethanol = Graph("CCO"), benzene = Graph("c1ccccc1");
  ethanol.targets = {1.0f, std::nanf("")};
  benzene.targets = {2.0f, 3.0f};
  zt::Batch b = MakeBatch({&ethanol, &benzene});
  EXPECT_EQ(b.count("distance"), 0u);
  EXPECT_EQ(b.at("atoms").sizes(), at::IntArrayRef({2, 6, kNumAtomFeatures}));
  EXPECT_EQ(b.at("atoms").scalar_type(), at::kLong);
  EXPECT_EQ(b.at("atom_mask").sizes(), at::IntArrayRef({2, 6}));
  EXPECT_EQ(b.at("atom_mask").scalar_type(), at::kBool);
  EXPECT_EQ(b.at("bonds").sizes(), at::IntArrayRef({2, 6, 6, kNumBondFeatures}));
  EXPECT_EQ(b.at("path").sizes(), at::IntArrayRef({2, 6, 6}));
  EXPECT_EQ(b.at("targets").sizes(), at::IntArrayRef({2, 2}));
  EXPECT_EQ(b.at("atom_mask").sum(1)[0].item<std::int64_t>(), 3);
  EXPECT_EQ(b.at("atom_mask").sum(1)[1].item<std::int64_t>(), 6);
  EXPECT_EQ(b.at("atoms")[0][2][0].item<std::int64_t>(), ethanol.atoms[2 * kNumAtomFeatures]);
  EXPECT_EQ(b.at("atoms")[0].slice(0, 3).abs().sum().item<std::int64_t>(), 0);
  EXPECT_EQ(b.at("bonds")[0][0][1][0].item<std::int64_t>(), kBondFeatureOffset[0]);  // single
  EXPECT_EQ(b.at("bonds")[0].slice(0, 3).abs().sum().item<std::int64_t>(), 0);
  EXPECT_EQ(b.at("bonds")[1][0][1][0].item<std::int64_t>(), kBondFeatureOffset[0] + 3);  // aromatic
  EXPECT_EQ(b.at("path")[0][0][2].item<std::int64_t>(), 2);
  EXPECT_EQ(b.at("path")[0][0][4].item<std::int64_t>(), kMaxPathDistance + 1);
  EXPECT_EQ(b.at("path")[0][5][5].item<std::int64_t>(), kMaxPathDistance + 1);
  EXPECT_EQ(b.at("path")[1][0][3].item<std::int64_t>(), 3);
  EXPECT_TRUE(std::isnan(b.at("targets")[0][1].item<float>()));
  EXPECT_EQ(b.at("targets")[1][1].item<float>(), 3.0f);
  EXPECT_TRUE(at::equal(b.at("target_mask"), at::tensor({1, 0, 1, 1}, at::kLong).view({2, 2}).to(at::kBool)));

  FeaturizeOptions options;
  options.conformers = true;
  MolGraph e3 = Graph("CCO", options), b3 = Graph("c1ccccc1", options);
  zt::Batch with_3d = MakeBatch({&e3, &b3});
  ASSERT_EQ(with_3d.count("distance"), 1u);
  EXPECT_EQ(with_3d.at("distance").sizes(), at::IntArrayRef({2, 6, 6}));
  EXPECT_FLOAT_EQ(with_3d.at("distance")[0][0][1].item<float>(), Distance(e3, 0, 1));
  EXPECT_EQ(with_3d.at("distance")[0][0][4].item<float>(), 0.0f);
  EXPECT_EQ(MakeBatch({&e3, &benzene}).count("distance"), 0u);  // benzene has none
}

// Debian's rdkit-data ships a real set: 1,017 SMILES of CHEMBL2321810 with pIC50s.
TEST(Chembl2321810, ReadsAllMoleculesQuickly) {
  const std::string dir = "/usr/share/RDKit/Contrib/FreeWilson/data/";
  const std::string smi = dir + "CHEMBL2321810.smi", act = dir + "CHEMBL2321810_act.csv";
  if (!std::ifstream(smi).good() || !std::ifstream(act).good()) {
    GTEST_SKIP() << smi << " or " << act << " is not here (Debian package rdkit-data)";
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Dataset> d = ReadSmi(smi, act, "Name", {"Act"}, {});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_THAT(d, IsOk());
  std::cout << d->description << "\n";
  EXPECT_EQ(d->read, 1017);
  EXPECT_EQ(d->invalid, 0) << ::testing::PrintToString(d->first_errors);
  EXPECT_EQ(d->duplicates, 0);
  EXPECT_THAT(d->mols, SizeIs(1017));
  EXPECT_LT(seconds, 60.0) << "featurising 1,017 molecules without conformers";
  for (const MolGraph& g : d->mols) {
    ASSERT_THAT(g.targets, SizeIs(1));
    EXPECT_FALSE(std::isnan(g.targets[0])) << g.name;
  }
  const Split s = ScaffoldSplit(d->mols, 0.8, 0.1, 0);
  EXPECT_EQ(s.train.size() + s.valid.size() + s.test.size(), 1017u);
}

// 3D on the first 24 CHEMBL2321810 molecules: every one embeds, bonded atoms sit 1.1-2.0 Å apart,
// and the distances do not depend on the number of threads.
TEST(Chembl2321810, ConformersAreThreadCountIndependent) {
  const std::string smi = "/usr/share/RDKit/Contrib/FreeWilson/data/CHEMBL2321810.smi";
  std::ifstream in(smi);
  if (!in.good()) GTEST_SKIP() << smi << " is not here (Debian package rdkit-data)";
  const std::string head = std::string(std::getenv("TEST_TMPDIR")) + "/chembl24.smi";
  {
    std::ofstream out(head);
    std::string line;
    for (int i = 0; i < 24 && std::getline(in, line); ++i) out << line << "\n";
  }
  FeaturizeOptions options;
  options.conformers = true;
  options.seed = 7;
  options.threads = 1;
  absl::StatusOr<Dataset> one = ReadSmi(head, "", "", {}, options);
  options.threads = 3;
  absl::StatusOr<Dataset> three = ReadSmi(head, "", "", {}, options);
  ASSERT_THAT(one, IsOk());
  ASSERT_THAT(three, IsOk());
  std::cout << one->description << "\n";
  EXPECT_EQ(one->invalid, 0) << ::testing::PrintToString(one->first_errors);
  ASSERT_THAT(one->mols, SizeIs(24));
  ASSERT_THAT(three->mols, SizeIs(24));
  for (std::size_t m = 0; m < 24; ++m) {
    const MolGraph& g = one->mols[m];
    EXPECT_EQ(g.smiles, three->mols[m].smiles);
    EXPECT_EQ(g.distance, three->mols[m].distance) << g.smiles;
    for (int i = 0; i < g.num_atoms; ++i) {
      for (int j = 0; j < g.num_atoms; ++j) {
        if (BondIds(g, i, j)[0] == 0) continue;
        EXPECT_GT(Distance(g, i, j), 1.1f) << g.smiles << " " << i << "-" << j;
        EXPECT_LT(Distance(g, i, j), 2.0f) << g.smiles << " " << i << "-" << j;
      }
    }
  }
}

}  // namespace
}  // namespace zt::science::molecule
