#include "science/molecule/data.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <GraphMol/ChemTransforms/ChemTransforms.h>
#include <GraphMol/Conformer.h>
#include <GraphMol/DistGeomHelpers/Embedder.h>
#include <GraphMol/FileParsers/FileParsers.h>
#include <GraphMol/FileParsers/MolSupplier.h>
#include <GraphMol/ForceFieldHelpers/MMFF/MMFF.h>
#include <GraphMol/ForceFieldHelpers/UFF/UFF.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/SanitException.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace zt::science::molecule {
namespace {

static_assert(kAtomFeatureOffset[kNumAtomFeatures - 1] + kAtomFeatureSize[kNumAtomFeatures - 1] == kAtomVocab);
static_assert(kBondFeatureOffset[kNumBondFeatures - 1] + kBondFeatureSize[kNumBondFeatures - 1] == kBondVocab);

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kMaxFirstErrors = 5;

// ---- atom and bond features ------------------------------------------------------------------

int ElementIndex(int atomic_number) {
  static constexpr int kElements[] = {1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 34, 35, 53};
  constexpr int n = sizeof(kElements) / sizeof(kElements[0]);
  for (int i = 0; i < n; ++i) {
    if (kElements[i] == atomic_number) return i;
  }
  return n;  // other
}

int HybridizationIndex(RDKit::Atom::HybridizationType h) {
  switch (h) {
    case RDKit::Atom::S:
      return 0;
    case RDKit::Atom::SP:
      return 1;
    case RDKit::Atom::SP2:
      return 2;
    case RDKit::Atom::SP3:
      return 3;
    case RDKit::Atom::SP3D:
      return 4;
    case RDKit::Atom::SP3D2:
      return 5;
    default:
      return 6;
  }
}

int ChiralityIndex(RDKit::Atom::ChiralType c) {
  switch (c) {
    case RDKit::Atom::CHI_UNSPECIFIED:
      return 0;
    case RDKit::Atom::CHI_TETRAHEDRAL_CW:
      return 1;
    case RDKit::Atom::CHI_TETRAHEDRAL_CCW:
      return 2;
    default:
      return 3;
  }
}

int BondTypeIndex(RDKit::Bond::BondType t) {
  switch (t) {
    case RDKit::Bond::SINGLE:
      return 0;
    case RDKit::Bond::DOUBLE:
      return 1;
    case RDKit::Bond::TRIPLE:
      return 2;
    case RDKit::Bond::AROMATIC:
      return 3;
    default:
      return 4;
  }
}

int BondStereoIndex(RDKit::Bond::BondStereo s) {
  switch (s) {
    case RDKit::Bond::STEREONONE:
      return 0;
    case RDKit::Bond::STEREOZ:
    case RDKit::Bond::STEREOCIS:
      return 1;
    case RDKit::Bond::STEREOE:
    case RDKit::Bond::STEREOTRANS:
      return 2;
    default:
      return 3;
  }
}

// A guess at why RDKit's SMILES parser said no (it reports through its logs, which are off in
// C++ programs): brackets, parentheses, ring closures and characters outside brackets.
std::string SmilesSyntaxHint(absl::string_view s) {
  static constexpr absl::string_view kAllowed = "BCNOPSFIbcnopsrl*-=#$:/\\.()%0123456789[]";
  int depth = 0;
  bool in_bracket = false;
  std::set<int> open_rings;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_bracket) {
      if (c == ']') in_bracket = false;
      continue;
    }
    if (kAllowed.find(c) == absl::string_view::npos) {
      return absl::StrCat("unexpected character '", std::string(1, c), "' at position ", i + 1);
    }
    if (c == '[') {
      in_bracket = true;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0) return absl::StrCat("unbalanced ')' at position ", i + 1);
    } else if (absl::ascii_isdigit(c) || c == '%') {
      int ring = c - '0';
      if (c == '%') {
        if (i + 2 >= s.size() || !absl::ascii_isdigit(s[i + 1]) || !absl::ascii_isdigit(s[i + 2])) {
          return absl::StrCat("'%' at position ", i + 1, " is not followed by two digits");
        }
        ring = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
        i += 2;
      }
      if (!open_rings.erase(ring)) open_rings.insert(ring);
    }
  }
  if (in_bracket) return "unclosed '['";
  if (depth > 0) return "unclosed '('";
  if (!open_rings.empty()) return absl::StrCat("unclosed ring bond ", *open_rings.begin());
  return "";
}

// How the conformers of a reader's molecules were made, for its description.
struct ConformerStats {
  std::atomic<int> random_coords{0};  // embedded only on the retry from random coordinates
  std::atomic<int> mmff{0}, uff{0}, unoptimised{0};
};

// 3D distances between the heavy atoms (the first mol.getNumAtoms() atoms: addHs appends).
absl::StatusOr<std::vector<float>> HeavyAtomDistances(const RDKit::ROMol& mol, int seed, ConformerStats* stats) {
  RDKit::RWMol h(mol);
  RDKit::MolOps::addHs(h);
  RDKit::DGeomHelpers::EmbedParameters params = RDKit::DGeomHelpers::ETKDGv3;
  params.randomSeed = seed;
  int conf_id = RDKit::DGeomHelpers::EmbedMolecule(h, params);
  if (conf_id < 0) {
    params.useRandomCoords = true;
    conf_id = RDKit::DGeomHelpers::EmbedMolecule(h, params);
    if (conf_id >= 0 && stats != nullptr) ++stats->random_coords;
  }
  if (conf_id < 0) {
    return absl::InvalidArgumentError("conformer embedding failed (ETKDGv3, also from random coordinates)");
  }
  // MMFF94, else UFF, else the embedding as it is: a force field that cannot type an atom is no
  // reason to lose the molecule.
  bool optimised = false;
  try {
    optimised = RDKit::MMFF::MMFFOptimizeMolecule(h, 200, "MMFF94", 10.0, conf_id).first >= 0;
  } catch (const std::exception&) {
  }
  std::atomic<int>* used = stats != nullptr ? &stats->mmff : nullptr;
  if (!optimised) {
    try {
      RDKit::UFF::UFFOptimizeMolecule(h, 200, 10.0, conf_id);
      used = stats != nullptr ? &stats->uff : nullptr;
    } catch (const std::exception&) {
      used = stats != nullptr ? &stats->unoptimised : nullptr;
    }
  }
  if (used != nullptr) ++*used;
  const RDKit::Conformer& conf = h.getConformer(conf_id);
  const int n = static_cast<int>(mol.getNumAtoms());
  std::vector<float> d(static_cast<std::size_t>(n) * n, 0.0f);
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      const float v = static_cast<float>((conf.getAtomPos(i) - conf.getAtomPos(j)).length());
      d[static_cast<std::size_t>(i) * n + j] = v;
      d[static_cast<std::size_t>(j) * n + i] = v;
    }
  }
  return d;
}

// A sanitised heavy-atom molecule -> graph.  Not const: ring information is computed when missing.
absl::StatusOr<MolGraph> FeaturizeMol(RDKit::ROMol& mol, const FeaturizeOptions& options,
                                      ConformerStats* stats = nullptr) {
  const int n = static_cast<int>(mol.getNumAtoms());
  if (n == 0) return absl::InvalidArgumentError("no atoms");
  if (n > options.max_atoms) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many atoms: ", n, " heavy atoms, max_atoms is ", options.max_atoms));
  }
  if (!mol.getRingInfo()->isInitialized()) RDKit::MolOps::findSSSR(mol);
  const RDKit::RingInfo& rings = *mol.getRingInfo();
  MolGraph g;
  g.num_atoms = n;
  g.smiles = RDKit::MolToSmiles(mol);
  const std::size_t nn = static_cast<std::size_t>(n) * n;

  g.atoms.resize(static_cast<std::size_t>(n) * kNumAtomFeatures);
  for (const RDKit::Atom* a : mol.atoms()) {
    const int charge = a->getFormalCharge();
    const int values[kNumAtomFeatures] = {
        ElementIndex(a->getAtomicNum()),
        std::min<int>(a->getDegree(), 5),
        charge >= -2 && charge <= 2 ? charge + 2 : 5,
        HybridizationIndex(a->getHybridization()),
        a->getIsAromatic() ? 1 : 0,
        std::min<int>(a->getTotalNumHs(), 4),
        ChiralityIndex(a->getChiralTag()),
        rings.numAtomRings(a->getIdx()) > 0 ? 1 : 0,
    };
    for (int c = 0; c < kNumAtomFeatures; ++c) {
      g.atoms[a->getIdx() * kNumAtomFeatures + c] = kAtomFeatureOffset[c] + values[c];
    }
  }

  g.bonds.assign(nn * kNumBondFeatures, 0);
  std::vector<std::vector<int>> neighbours(n);
  for (const RDKit::Bond* b : mol.bonds()) {
    const int i = static_cast<int>(b->getBeginAtomIdx()), j = static_cast<int>(b->getEndAtomIdx());
    const int values[kNumBondFeatures] = {
        BondTypeIndex(b->getBondType()),
        b->getIsConjugated() ? 1 : 0,
        rings.numBondRings(b->getIdx()) > 0 ? 1 : 0,
        BondStereoIndex(b->getStereo()),
    };
    for (int c = 0; c < kNumBondFeatures; ++c) {
      g.bonds[(static_cast<std::size_t>(i) * n + j) * kNumBondFeatures + c] = kBondFeatureOffset[c] + values[c];
      g.bonds[(static_cast<std::size_t>(j) * n + i) * kNumBondFeatures + c] = kBondFeatureOffset[c] + values[c];
    }
    neighbours[i].push_back(j);
    neighbours[j].push_back(i);
  }

  // Breadth-first search from every atom.
  g.path.assign(nn, kMaxPathDistance + 1);
  std::vector<int> queue(n), dist(n);
  for (int s = 0; s < n; ++s) {
    std::fill(dist.begin(), dist.end(), -1);
    int head = 0, tail = 0;
    queue[tail++] = s;
    dist[s] = 0;
    while (head < tail) {
      const int u = queue[head++];
      for (int v : neighbours[u]) {
        if (dist[v] < 0) {
          dist[v] = dist[u] + 1;
          queue[tail++] = v;
        }
      }
    }
    for (int t = 0; t < n; ++t) {
      if (dist[t] >= 0) g.path[static_cast<std::size_t>(s) * n + t] = std::min(dist[t], kMaxPathDistance);
    }
  }

  if (options.conformers) {
    ASSIGN_OR_RETURN(g.distance, HeavyAtomDistances(mol, options.seed, stats));
  }
  return g;
}

absl::StatusOr<MolGraph> FeaturizeSmiles(const std::string& smiles, const FeaturizeOptions& options,
                                         ConformerStats* stats) {
  const std::string s(absl::StripAsciiWhitespace(smiles));
  if (s.empty()) return absl::InvalidArgumentError("empty SMILES");
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    mol.reset(RDKit::SmilesToMol(s));
  } catch (const RDKit::MolSanitizeException& e) {
    return absl::InvalidArgumentError(absl::StrCat("RDKit sanitisation failed: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("RDKit cannot read it: ", e.what()));
  }
  if (mol == nullptr) {
    const std::string hint = SmilesSyntaxHint(s);
    return absl::InvalidArgumentError(absl::StrCat("SMILES parse error", hint.empty() ? "" : ": ", hint));
  }
  return FeaturizeMol(*mol, options, stats);
}

// RDKit keeps some tables (periodic table, force-field parameters) in lazily built singletons:
// build them on one thread before the workers start.
void WarmUp(bool conformers) {
  static std::once_flag flat, three_d;
  auto run = [](bool c) {
    FeaturizeOptions o;
    o.conformers = c;
    std::unique_ptr<RDKit::RWMol> mol(RDKit::SmilesToMol("CC(=O)Nc1ccc(Cl)cc1"));
    if (mol == nullptr) return;
    (void)FeaturizeMol(*mol, o);
    if (c) {
      RDKit::RWMol h(*mol);
      RDKit::MolOps::addHs(h);
      RDKit::DGeomHelpers::EmbedParameters params = RDKit::DGeomHelpers::ETKDGv3;
      params.randomSeed = 0;
      if (RDKit::DGeomHelpers::EmbedMolecule(h, params) >= 0) {
        try {
          RDKit::UFF::UFFOptimizeMolecule(h, 10);
        } catch (const std::exception&) {
        }
      }
    }
  };
  std::call_once(flat, run, false);
  if (conformers) std::call_once(three_d, run, true);
}

// Runs fn(i) for i in [0, n) on `threads` threads (0: hardware concurrency), in chunks handed out
// in order; fn writes its own result slot, so the output keeps the input order.
template <typename Fn>
void ParallelFor(std::size_t n, int threads, const Fn& fn) {
  constexpr std::size_t kChunk = 8;
  std::size_t t = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  t = std::min(t, (n + kChunk - 1) / kChunk);
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (;;) {
      const std::size_t begin = next.fetch_add(kChunk);
      if (begin >= n) return;
      for (std::size_t i = begin; i < std::min(n, begin + kChunk); ++i) fn(i);
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t k = 1; k < t; ++k) pool.emplace_back(work);
  work();
  for (std::thread& th : pool) th.join();
}

// ---- records and datasets --------------------------------------------------------------------

// One input record before featurisation.
struct Record {
  std::int64_t line = 0;
  std::string smiles;                 // as written (CSV, .smi)
  std::unique_ptr<RDKit::ROMol> mol;  // already parsed (SDF)
  std::string name;
  std::vector<float> targets;
  std::string error;  // set: invalid before featurisation
};

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", s);
  return buf;
}

// Featurises the records in parallel, then keeps, in input order, the valid ones whose canonical
// SMILES is new.
Dataset Assemble(const std::string& path, std::vector<Record>& records, std::vector<std::string> target_names,
                 const FeaturizeOptions& options) {
  WarmUp(options.conformers);
  const auto start = std::chrono::steady_clock::now();
  std::vector<absl::StatusOr<MolGraph>> graphs(records.size());
  ConformerStats stats;
  ParallelFor(records.size(), options.threads, [&](std::size_t i) {
    Record& r = records[i];
    if (!r.error.empty()) return;
    try {
      graphs[i] = r.mol != nullptr ? FeaturizeMol(*r.mol, options, &stats) : FeaturizeSmiles(r.smiles, options, &stats);
    } catch (const std::exception& e) {
      graphs[i] = absl::InternalError(absl::StrCat("RDKit: ", e.what()));
    } catch (...) {  // an exception escaping a worker would end the process
      graphs[i] = absl::InternalError("RDKit threw an exception that is not a std::exception");
    }
    r.mol.reset();
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Dataset d;
  d.target_names = std::move(target_names);
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i < records.size(); ++i) {
    Record& r = records[i];
    ++d.read;
    if (r.error.empty() && !graphs[i].ok()) r.error = std::string(graphs[i].status().message());
    if (!r.error.empty()) {
      ++d.invalid;
      if (d.first_errors.size() < kMaxFirstErrors) {
        const std::string& what = !r.smiles.empty() ? r.smiles : r.name;
        d.first_errors.push_back(absl::StrCat(path, ":", r.line, ": ", what, ": ", r.error));
      }
      continue;
    }
    MolGraph g = *std::move(graphs[i]);
    if (!seen.insert(g.smiles).second) {
      ++d.duplicates;
      continue;
    }
    g.name = std::move(r.name);
    g.targets = std::move(r.targets);
    d.mols.push_back(std::move(g));
  }
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  d.description =
      absl::StrCat(path, ": ", d.read, " records, ", d.mols.size(), " molecules (", d.invalid, " invalid, ",
                   d.duplicates, " duplicates), targets [", absl::StrJoin(d.target_names, ", "), "], ",
                   options.conformers
                       ? absl::StrCat("3D (ETKDGv3 seed ", options.seed, "; optimised with MMFF94 ", stats.mmff.load(),
                                      ", UFF ", stats.uff.load(), ", not ", stats.unoptimised.load(),
                                      "; embedded from random coordinates ", stats.random_coords.load(), ")")
                       : std::string("2D"),
                   ", featurised in ", Seconds(seconds), " on ",
                   options.threads > 0 ? options.threads : static_cast<int>(hw), " threads");
  return d;
}

// A target cell: a number, or missing (empty, NA, N/A, nan -> NaN).  False when neither.
bool ParseTarget(absl::string_view cell, float* out) {
  cell = absl::StripAsciiWhitespace(cell);
  if (cell.empty() || absl::EqualsIgnoreCase(cell, "na") || absl::EqualsIgnoreCase(cell, "n/a") ||
      absl::EqualsIgnoreCase(cell, "nan")) {
    *out = kNaN;
    return true;
  }
  return absl::SimpleAtof(cell, out);
}

// ---- CSV -------------------------------------------------------------------------------------

struct CsvRow {
  std::int64_t line = 0;  // where the row starts
  std::vector<std::string> fields;
};

// RFC 4180: fields separated by commas, rows by LF or CRLF, a field in double quotes may hold
// commas, line breaks and "" for a quote.  Blank lines are skipped.
absl::StatusOr<std::vector<CsvRow>> ParseCsv(absl::string_view text, const std::string& path) {
  std::vector<CsvRow> rows;
  std::size_t i = absl::StartsWith(text, "\xEF\xBB\xBF") ? 3 : 0;  // UTF-8 byte order mark
  const std::size_t n = text.size();
  std::int64_t line = 1;
  std::size_t line_start = 0;
  while (i < n) {
    CsvRow row;
    row.line = line;
    for (bool row_done = false; !row_done;) {
      std::string field;
      if (i < n && text[i] == '"') {
        const std::int64_t quote_line = line;
        const std::size_t quote_column = i - line_start + 1;
        ++i;
        for (;;) {
          if (i >= n) {
            return absl::InvalidArgumentError(
                absl::StrCat(path, ":", quote_line, ":", quote_column, ": quoted field has no closing quote"));
          }
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field += '"';
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') {
              ++line;
              line_start = i;
            }
            field += c;
          }
        }
        // Text after the closing quote is not RFC 4180; keep it as pandas does.
        for (; i < n && text[i] != ',' && text[i] != '\n'; ++i) {
          if (text[i] != '\r') field += text[i];
        }
      } else {
        for (; i < n && text[i] != ',' && text[i] != '\n'; ++i) field += text[i];
        if (!field.empty() && field.back() == '\r') field.pop_back();
      }
      row.fields.push_back(std::move(field));
      if (i >= n) {
        row_done = true;
      } else if (text[i] == ',') {
        ++i;
      } else {  // '\n'
        ++i;
        ++line;
        line_start = i;
        row_done = true;
      }
    }
    if (row.fields.size() == 1 && absl::StripAsciiWhitespace(row.fields[0]).empty()) continue;
    rows.push_back(std::move(row));
  }
  return rows;
}

// The index of `column` in the header, or kInvalidArgument naming it and listing the header.
absl::StatusOr<int> ColumnIndex(const std::vector<std::string>& header, const std::string& column,
                                const std::string& path) {
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (absl::StripAsciiWhitespace(header[c]) == column) return static_cast<int>(c);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ":1: no column \"", column, "\"; the header has: ", absl::StrJoin(header, ", ")));
}

struct Table {
  std::vector<std::string> header;
  std::vector<CsvRow> rows;
};

absl::StatusOr<Table> ReadTable(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(path));
  ASSIGN_OR_RETURN(std::vector<CsvRow> rows, ParseCsv(text, path));
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty: no header row"));
  Table t;
  t.header = std::move(rows.front().fields);
  rows.erase(rows.begin());
  t.rows = std::move(rows);
  return t;
}

// Targets of one row into `out`; "" or the reason the row is unusable.
std::string RowTargets(const CsvRow& row, std::size_t header_size, const std::vector<int>& columns,
                       const std::vector<std::string>& names, std::vector<float>* out) {
  if (row.fields.size() != header_size) {
    return absl::StrCat(row.fields.size(), " fields, the header has ", header_size);
  }
  out->resize(columns.size());
  for (std::size_t k = 0; k < columns.size(); ++k) {
    if (!ParseTarget(row.fields[columns[k]], &(*out)[k])) {
      return absl::StrCat("target \"", names[k], "\" is not a number: \"", row.fields[columns[k]], "\"");
    }
  }
  return "";
}

std::string Extension(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return absl::AsciiStrToLower(path.substr(dot));
}

bool FileExists(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

}  // namespace

absl::StatusOr<MolGraph> Featurize(const std::string& smiles, const FeaturizeOptions& options) {
  return FeaturizeSmiles(smiles, options, nullptr);
}

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const std::string& smiles_column,
                                const std::vector<std::string>& target_columns, const FeaturizeOptions& options) {
  ASSIGN_OR_RETURN(Table table, ReadTable(path));
  int smiles_index = 0;
  if (!smiles_column.empty()) {
    ASSIGN_OR_RETURN(smiles_index, ColumnIndex(table.header, smiles_column, path));
  } else {
    for (std::size_t c = 0; c < table.header.size(); ++c) {
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(table.header[c]), "smiles")) {
        smiles_index = static_cast<int>(c);
        break;
      }
    }
  }
  std::vector<int> target_index;
  for (const std::string& t : target_columns) {
    ASSIGN_OR_RETURN(int index, ColumnIndex(table.header, t, path));
    target_index.push_back(index);
  }
  std::vector<Record> records(table.rows.size());
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const CsvRow& row = table.rows[i];
    Record& r = records[i];
    r.line = row.line;
    if (static_cast<std::size_t>(smiles_index) < row.fields.size()) {
      r.smiles = std::string(absl::StripAsciiWhitespace(row.fields[smiles_index]));
    }
    r.error = RowTargets(row, table.header.size(), target_index, target_columns, &r.targets);
  }
  return Assemble(path, records, target_columns, options);
}

absl::StatusOr<Dataset> ReadSmi(const std::string& path, const std::string& activity_csv,
                                const std::string& name_column, const std::vector<std::string>& target_columns,
                                const FeaturizeOptions& options) {
  if (activity_csv.empty() && !target_columns.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": target columns [", absl::StrJoin(target_columns, ", "),
                                                   "] need an activity CSV to take them from"));
  }
  // name -> (line in the activity CSV, targets or the reason they are unusable)
  std::unordered_map<std::string, std::pair<std::vector<float>, std::string>> activity;
  if (!activity_csv.empty()) {
    ASSIGN_OR_RETURN(Table table, ReadTable(activity_csv));
    int name_index = 0;
    if (!name_column.empty()) {
      ASSIGN_OR_RETURN(name_index, ColumnIndex(table.header, name_column, activity_csv));
    }
    std::vector<int> target_index;
    for (const std::string& t : target_columns) {
      ASSIGN_OR_RETURN(int index, ColumnIndex(table.header, t, activity_csv));
      target_index.push_back(index);
    }
    for (const CsvRow& row : table.rows) {
      if (static_cast<std::size_t>(name_index) >= row.fields.size()) continue;
      std::string name(absl::StripAsciiWhitespace(row.fields[name_index]));
      if (activity.count(name) != 0) continue;  // the first row of a name wins
      std::vector<float> targets;
      std::string error = RowTargets(row, table.header.size(), target_index, target_columns, &targets);
      if (!error.empty()) error = absl::StrCat(activity_csv, ":", row.line, ": ", error);
      activity.emplace(std::move(name), std::make_pair(std::move(targets), std::move(error)));
    }
  }

  ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(path));
  std::vector<Record> records;
  std::int64_t line_number = 0;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> tokens = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (first) {
      first = false;
      if (absl::EqualsIgnoreCase(tokens[0], "smiles")) continue;  // a header line
    }
    Record r;
    r.line = line_number;
    r.smiles = std::string(tokens[0]);
    if (tokens.size() > 1) r.name = std::string(tokens[1]);
    if (!activity_csv.empty()) {
      auto it = activity.find(r.name);
      if (it == activity.end()) {
        r.error = "no activity";
      } else {
        r.targets = it->second.first;
        r.error = it->second.second;
      }
    }
    records.push_back(std::move(r));
  }
  return Assemble(path, records, target_columns, options);
}

absl::StatusOr<Dataset> ReadSdf(const std::string& path, const std::vector<std::string>& target_properties,
                                const FeaturizeOptions& options) {
  ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(path));
  // Where each record starts (line number and offset), to name lines in errors and to re-read a
  // record RDKit rejected for the reason (the supplier only logs it).
  std::vector<std::int64_t> start_line = {1};
  std::vector<std::size_t> start_offset = {0};
  {
    std::int64_t line = 1;
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const absl::string_view l = absl::StripAsciiWhitespace(absl::string_view(text).substr(pos, end - pos));
      pos = end + 1;
      ++line;
      if (l == "$$$$" && pos < text.size()) {
        start_line.push_back(line);
        start_offset.push_back(pos);
      }
    }
  }
  std::vector<Record> records;
  RDKit::SDMolSupplier supplier;
  try {
    supplier.setData(text, /*sanitize=*/true, /*removeHs=*/true);
    for (std::size_t k = 0; !supplier.atEnd(); ++k) {
      Record r;
      r.line = k < start_line.size() ? start_line[k] : 0;
      std::string reason;
      try {
        r.mol.reset(supplier.next());
      } catch (const std::exception& e) {
        reason = e.what();
      }
      if (r.mol == nullptr) {
        if (k >= start_offset.size()) break;  // trailing text after the last record
        const std::size_t end = k + 1 < start_offset.size() ? start_offset[k + 1] : text.size();
        const std::string block = text.substr(start_offset[k], end - start_offset[k]);
        r.name = std::string(absl::StripAsciiWhitespace(block.substr(0, block.find('\n'))));
        if (r.name.empty()) r.name = absl::StrCat("record ", k + 1);
        if (reason.empty()) {
          try {
            std::unique_ptr<RDKit::RWMol> again(RDKit::MolBlockToMol(block));
          } catch (const std::exception& e) {
            reason = e.what();
          }
        }
        r.error = absl::StrCat("RDKit cannot read the record", reason.empty() ? "" : ": ",
                               absl::StripAsciiWhitespace(reason));
        records.push_back(std::move(r));
        continue;
      }
      r.mol->getPropIfPresent(RDKit::common_properties::_Name, r.name);
      r.targets.resize(target_properties.size());
      for (std::size_t t = 0; t < target_properties.size(); ++t) {
        std::string value;
        if (!r.mol->getPropIfPresent(target_properties[t], value)) value = "";
        if (!ParseTarget(value, &r.targets[t])) {
          r.error = absl::StrCat("SD property \"", target_properties[t], "\" is not a number: \"", value, "\"");
        }
      }
      records.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": RDKit's SDMolSupplier failed: ", e.what()));
  }
  return Assemble(path, records, target_properties, options);
}

absl::StatusOr<Dataset> ReadMolecules(const std::string& path, const std::string& smiles_column,
                                      const std::vector<std::string>& target_columns, const FeaturizeOptions& options) {
  const std::string ext = Extension(path);
  if (ext == ".csv") return ReadCsv(path, smiles_column, target_columns, options);
  if (ext == ".sdf" || ext == ".sd") return ReadSdf(path, target_columns, options);
  if (ext == ".smi") {
    if (target_columns.empty()) return ReadSmi(path, "", "", {}, options);
    const std::string stem = path.substr(0, path.size() - ext.size());
    for (const std::string& activity : {stem + "_act.csv", stem + ".csv"}) {
      if (FileExists(activity)) return ReadSmi(path, activity, "", target_columns, options);
    }
    return absl::NotFoundError(absl::StrCat(path, ": target columns [", absl::StrJoin(target_columns, ", "),
                                            "] come from an activity CSV beside the .smi, but neither ", stem,
                                            "_act.csv nor ", stem, ".csv exists"));
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": unknown molecule file extension \"", ext,
                                                 "\"; use .csv (SMILES and target columns), .smi (SMILES "
                                                 "and name) or .sdf / .sd"));
}

std::string ScaffoldSmiles(const std::string& smiles) {
  try {
    std::unique_ptr<RDKit::RWMol> mol(RDKit::SmilesToMol(smiles));
    if (mol == nullptr) return "";
    std::unique_ptr<RDKit::ROMol> scaffold(RDKit::MurckoDecompose(*mol));
    if (scaffold == nullptr || scaffold->getNumAtoms() == 0) return "";
    RDKit::RWMol s(*scaffold);
    s.updatePropertyCache(/*strict=*/false);
    RDKit::MolOps::findSSSR(s);
    return RDKit::MolToSmiles(s, /*doIsomericSmiles=*/false);
  } catch (const std::exception&) {
    return "";
  }
}

namespace {

// Fisher-Yates with rng() % (i + 1): the same sequence on every standard library (std::shuffle's
// is not specified).
template <typename T>
void Shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

}  // namespace

Split RandomSplit(std::int64_t n, double train, double valid, std::uint64_t seed) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::mt19937_64 rng(seed);
  Shuffle(order, rng);
  const auto clamp = [&](double f) {
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(f * static_cast<double>(n))), 0, n);
  };
  const std::int64_t a = clamp(train), b = std::max(a, clamp(train + valid));
  Split s;
  s.train.assign(order.begin(), order.begin() + a);
  s.valid.assign(order.begin() + a, order.begin() + b);
  s.test.assign(order.begin() + b, order.end());
  return s;
}

Split ScaffoldSplit(const std::vector<MolGraph>& mols, double train, double valid, std::uint64_t seed) {
  const double n = static_cast<double>(mols.size());
  const double train_size = train * n, valid_size = valid * n, test_size = (1.0 - train - valid) * n;
  // Groups in order of first appearance, indices ascending within each.
  std::vector<std::vector<std::int64_t>> groups;
  std::unordered_map<std::string, std::size_t> group_of;
  for (std::size_t i = 0; i < mols.size(); ++i) {
    auto [it, added] = group_of.emplace(ScaffoldSmiles(mols[i].smiles), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(static_cast<std::int64_t>(i));
  }
  std::vector<std::vector<std::int64_t>> big, small;
  for (std::vector<std::int64_t>& g : groups) {
    const double size = static_cast<double>(g.size());
    (size > valid_size / 2 || size > test_size / 2 ? big : small).push_back(std::move(g));
  }
  std::mt19937_64 rng(seed);
  Shuffle(big, rng);
  Shuffle(small, rng);
  Split s;
  for (auto* list : {&big, &small}) {
    for (const std::vector<std::int64_t>& g : *list) {
      const double size = static_cast<double>(g.size());
      std::vector<std::int64_t>& part = static_cast<double>(s.train.size()) + size <= train_size   ? s.train
                                        : static_cast<double>(s.valid.size()) + size <= valid_size ? s.valid
                                                                                                   : s.test;
      part.insert(part.end(), g.begin(), g.end());
    }
  }
  return s;
}

zt::Batch MakeBatch(const std::vector<const MolGraph*>& graphs) {
  const std::int64_t b = static_cast<std::int64_t>(graphs.size());
  std::int64_t n = 0, t = 0;
  bool all_distances = b > 0;
  for (const MolGraph* g : graphs) {
    n = std::max<std::int64_t>(n, g->num_atoms);
    t = std::max<std::int64_t>(t, static_cast<std::int64_t>(g->targets.size()));
    if (g->distance.empty() && g->num_atoms > 0) all_distances = false;
  }
  at::Tensor atoms = at::zeros({b, n, kNumAtomFeatures}, at::kLong);
  at::Tensor atom_mask = at::zeros({b, n}, at::kBool);
  at::Tensor bonds = at::zeros({b, n, n, kNumBondFeatures}, at::kLong);
  at::Tensor path = at::full({b, n, n}, kMaxPathDistance + 1, at::kLong);
  at::Tensor targets = at::full({b, t}, kNaN, at::kFloat);
  at::Tensor target_mask = at::zeros({b, t}, at::kBool);
  at::Tensor distance;
  if (all_distances) distance = at::zeros({b, n, n}, at::kFloat);
  auto* pa = atoms.data_ptr<std::int64_t>();
  auto* pm = atom_mask.data_ptr<bool>();
  auto* pb = bonds.data_ptr<std::int64_t>();
  auto* pp = path.data_ptr<std::int64_t>();
  auto* pt = targets.data_ptr<float>();
  auto* ptm = target_mask.data_ptr<bool>();
  float* pd = all_distances ? distance.data_ptr<float>() : nullptr;
  for (std::int64_t k = 0; k < b; ++k) {
    const MolGraph& g = *graphs[k];
    const std::int64_t m = g.num_atoms;
    std::copy(g.atoms.begin(), g.atoms.end(), pa + k * n * kNumAtomFeatures);
    std::fill(pm + k * n, pm + k * n + m, true);
    for (std::int64_t i = 0; i < m; ++i) {
      std::copy(g.bonds.begin() + i * m * kNumBondFeatures, g.bonds.begin() + (i + 1) * m * kNumBondFeatures,
                pb + ((k * n + i) * n) * kNumBondFeatures);
      std::copy(g.path.begin() + i * m, g.path.begin() + (i + 1) * m, pp + (k * n + i) * n);
      if (pd != nullptr && m > 0) {
        std::copy(g.distance.begin() + i * m, g.distance.begin() + (i + 1) * m, pd + (k * n + i) * n);
      }
    }
    for (std::size_t j = 0; j < g.targets.size(); ++j) {
      pt[k * t + j] = g.targets[j];
      ptm[k * t + j] = !std::isnan(g.targets[j]);
    }
  }
  zt::Batch batch = {{"atoms", atoms}, {"atom_mask", atom_mask}, {"bonds", bonds},
                     {"path", path},   {"targets", targets},     {"target_mask", target_mask}};
  if (all_distances) batch["distance"] = distance;
  return batch;
}

}  // namespace zt::science::molecule
