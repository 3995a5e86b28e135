// Molecule data for the science/molecule models: SMILES, .smi and SDF files turned into
// heavy-atom graphs with categorical atom and bond features, shortest-path lengths and
// (optionally) 3D distances from an RDKit conformer, plus scaffold / random splits and padded
// batches.
//
//   zt::science::molecule::FeaturizeOptions options;   // options.conformers = true for 3D
//   ASSIGN_OR_RETURN(Dataset data, ReadMolecules("bbbp.csv", "smiles", {"p_np"}, options));
//   LOG(INFO) << data.description;   // counts of read / invalid / duplicate records
//   Split split = ScaffoldSplit(data.mols, 0.8, 0.1, /*seed=*/0);
//   std::vector<const MolGraph*> b = {&data.mols[split.train[0]], &data.mols[split.train[1]]};
//   zt::Batch batch = MakeBatch(b);  // "atoms" [2,N,8], "bonds" [2,N,N,4], "path", "targets", ...
//
// Invalid records (unparsable SMILES, sanitisation failures, too many atoms, failed conformers)
// are skipped and counted, never fatal; a file that cannot be read or a column that is not
// there is an error.  RDKit stays inside data.cc: this header does not include it.
#ifndef ZEROTRAIN_SCIENCE_MOLECULE_DATA_H_
#define ZEROTRAIN_SCIENCE_MOLECULE_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/model.h"

namespace zt::science::molecule {

// Categorical atom features.  Column c of an atom holds kAtomFeatureOffset[c] + v, where v is
// the value's index within that column, so all columns share one vocabulary of kAtomVocab ids
// (one embedding table serves all) and id 0 is left for padding.  Columns and their values:
//   0 element      H B C N O F Si P S Cl Se Br I, other                        (14)
//   1 degree       0 1 2 3 4 5+  (heavy-atom neighbours)                       (6)
//   2 charge       -2 -1 0 +1 +2, other                                        (6)
//   3 hybrid.      S SP SP2 SP3 SP3D SP3D2, other (unspecified included)       (7)
//   4 aromatic     no yes                                                      (2)
//   5 hydrogens    0 1 2 3 4+  (RDKit getTotalNumHs)                           (5)
//   6 chirality    none CW CCW other                                           (4)
//   7 in ring      no yes                                                      (2)
inline constexpr int kNumAtomFeatures = 8;
inline constexpr int kAtomFeatureSize[kNumAtomFeatures] = {14, 6, 6, 7, 2, 5, 4, 2};
inline constexpr int kAtomFeatureOffset[kNumAtomFeatures] = {1, 15, 21, 27, 34, 36, 41, 45};
inline constexpr int kAtomVocab = 47;

// Bond features of an atom pair, in one vocabulary of kBondVocab ids where 0 means "no bond" in
// every column (and on the diagonal and in padding).  Column c holds kBondFeatureOffset[c] + v:
//   0 type         single double triple aromatic, other                        (5)
//   1 conjugated   no yes                                                      (2)
//   2 in ring      no yes                                                      (2)
//   3 stereo       none Z/cis E/trans, any/other                               (4)
inline constexpr int kNumBondFeatures = 4;
inline constexpr int kBondFeatureSize[kNumBondFeatures] = {5, 2, 2, 4};
inline constexpr int kBondFeatureOffset[kNumBondFeatures] = {1, 6, 8, 10};
inline constexpr int kBondVocab = 14;

// Shortest-path lengths (in bonds) are clipped to kMaxPathDistance; atoms in different fragments
// get kMaxPathDistance + 1, so there are kMaxPathDistance + 2 values, 0 being the atom itself.
inline constexpr int kMaxPathDistance = 16;

struct MolGraph {
  std::string smiles;               // canonical (RDKit MolToSmiles), heavy atoms
  std::string name;                 // id from the input when it has one
  int num_atoms = 0;                // heavy atoms, in the input's atom order
  std::vector<std::int64_t> atoms;  // [num_atoms * kNumAtomFeatures]
  std::vector<std::int64_t> bonds;  // [num_atoms * num_atoms * kNumBondFeatures], 0 = none
  std::vector<std::int64_t> path;   // [num_atoms * num_atoms] shortest path length (clipped)
  std::vector<float> distance;      // [num_atoms * num_atoms] 3D distances in Å; empty without conformers
  std::vector<float> targets;       // one per target column; NaN = missing
};

struct FeaturizeOptions {
  // 3D: add hydrogens, embed with ETKDGv3 (randomSeed = seed), optimise with MMFF94 (else UFF,
  // else keep the embedding); an embedding that fails is retried from random coordinates, and
  // one that fails again makes the molecule invalid.  Then distances between heavy atoms.
  bool conformers = false;
  int seed = 0;
  int max_atoms = 256;  // molecules with more heavy atoms are invalid ("too many atoms")
  int threads = 0;      // featurisation threads of the readers (0 = hardware concurrency)
};

// One SMILES string -> graph, or kInvalidArgument saying why: a parse error, RDKit's
// sanitisation message, no atoms, too many atoms, or a failed conformer.
absl::StatusOr<MolGraph> Featurize(const std::string& smiles, const FeaturizeOptions& options);

struct Dataset {
  std::vector<MolGraph> mols;
  std::vector<std::string> target_names;
  std::int64_t read = 0;                  // records read
  std::int64_t invalid = 0;               // skipped as invalid
  std::int64_t duplicates = 0;            // dropped: same canonical SMILES as an earlier record (first kept)
  std::vector<std::string> first_errors;  // up to 5: "<file>:<line>: <smiles>: <reason>"
  std::string description;                // one line for the log
};

// CSV with a header row (RFC 4180 quoting: "a,b", "say ""hi""", newlines inside quotes), a SMILES
// column and target columns; an empty cell, NA, N/A or nan is a missing target (NaN).  An empty
// smiles_column picks the column named "smiles" (any case), else the first.  Records whose field
// count differs from the header's, or with a target that is not a number, are invalid.
absl::StatusOr<Dataset> ReadCsv(const std::string& path, const std::string& smiles_column,
                                const std::vector<std::string>& target_columns, const FeaturizeOptions& options);

// .smi: "SMILES [name]" per line, whitespace separated (blank lines and '#' comments skipped, a
// first line "smiles ..." taken as a header).  With activity_csv, targets come from its
// target_columns, joined on name_column (empty: its first column) by the molecule's name; a
// molecule without a row there is invalid with reason "no activity".
absl::StatusOr<Dataset> ReadSmi(const std::string& path, const std::string& activity_csv,
                                const std::string& name_column, const std::vector<std::string>& target_columns,
                                const FeaturizeOptions& options);

// SDF through RDKit's SDMolSupplier (hydrogens removed): targets from the named SD properties
// (a record without one gets NaN), the name from the title line (_Name).
absl::StatusOr<Dataset> ReadSdf(const std::string& path, const std::vector<std::string>& target_properties,
                                const FeaturizeOptions& options);

// By extension: .csv -> ReadCsv; .sdf / .sd -> ReadSdf (target_columns are SD properties,
// smiles_column unused); .smi -> ReadSmi, where target columns come from an activity CSV beside
// it, <stem>_act.csv or else <stem>.csv, joined on that CSV's first column.  Other extensions
// are kInvalidArgument naming the file and the ones that work.
absl::StatusOr<Dataset> ReadMolecules(const std::string& path, const std::string& smiles_column,
                                      const std::vector<std::string>& target_columns, const FeaturizeOptions& options);

// Bemis-Murcko scaffold (RDKit MurckoDecompose) as canonical SMILES without stereo, as chemprop
// computes it; "" for acyclic molecules (and for a SMILES RDKit cannot read).
std::string ScaffoldSmiles(const std::string& smiles);

struct Split {
  std::vector<std::int64_t> train, valid, test;
};

// Random split of 0..n-1: a Fisher-Yates shuffle with std::mt19937_64(seed), then the first
// floor(train * n) indices, the next up to floor((train + valid) * n), the rest test.
Split RandomSplit(std::int64_t n, double train, double valid, std::uint64_t seed);

// chemprop's balanced scaffold split: molecules grouped by ScaffoldSmiles; groups larger than
// half the valid or the test size go first, then the others, each list shuffled with the seed;
// groups fill train, then valid, then the test part, a group going to the first that still has
// room for all of it.  No scaffold appears in two parts; the same seed gives the same split.
Split ScaffoldSplit(const std::vector<MolGraph>& mols, double train, double valid, std::uint64_t seed);

// Pads graphs to the largest, on the CPU: "atoms" [B,N,kNumAtomFeatures] int64 (0 in padding),
// "atom_mask" [B,N] bool, "bonds" [B,N,N,kNumBondFeatures] int64 (0 = none), "path" [B,N,N]
// int64 (padding kMaxPathDistance + 1), "distance" [B,N,N] float (only when every graph has
// distances), "targets" [B,T] float (NaN kept) and "target_mask" [B,T] bool (true where present).
zt::Batch MakeBatch(const std::vector<const MolGraph*>& graphs);

}  // namespace zt::science::molecule

#endif  // ZEROTRAIN_SCIENCE_MOLECULE_DATA_H_
