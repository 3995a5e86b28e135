// The molecule_train job: molecules in (CSV, .smi + activity CSV, SDF), RDKit featurisation,
// a split, the graph transformer trained by the engine with the --deepspeed config, and in
// --output_dir: metrics.json (test_rmse, test_mae, test_r2 or test_roc_auc, each beside the
// trivial baseline), predictions.csv (the test split) and checkpoint/ (config.json,
// model.safetensors, targets.json with the standardisation).
#ifndef ZEROTRAIN_SCIENCE_MOLECULE_TRAIN_H_
#define ZEROTRAIN_SCIENCE_MOLECULE_TRAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace zt::science::molecule {

struct MoleculeTrainArgs {
  // Data.  No train_file: the embedded default (rdkit-data's CHEMBL2321810 activity set).
  std::string train_file;
  std::string activity_file;  // .smi input: the CSV holding its targets, joined by name_column
  std::string smiles_column = "smiles";
  std::string name_column = "Name";
  std::vector<std::string> target_columns;
  std::string task = "auto";                          // auto | regression | classification
  std::string split = "random";                       // random | scaffold
  double train_fraction = 0.8, valid_fraction = 0.1;  // test: the rest
  bool conformers = false;                            // 3D distances from ETKDG + MMFF conformers
  int max_atoms = 256;
  int threads = 0;

  // Model.
  int layers = 4, hidden = 128, heads = 8, ffn = 256;
  double dropout = 0.1;

  // Training.
  std::string deepspeed;
  std::string output_dir;
  bool overwrite_output_dir = false;
  // Checkpoints (HF's flags): output_dir/checkpoint-N every save_steps optimizer steps (0: none),
  // the newest save_total_limit kept (<= 0: all); resume from a checkpoint-N or "latest".
  std::int64_t save_steps = 0, save_total_limit = -1;
  std::string resume_from_checkpoint;
  double peak_tflops = 0;  // the device's dense peak for MFU; 0: from the card's name
  int epochs = 30;
  int batch_size = 32;  // per device
  double learning_rate = 3e-4, weight_decay = 0.01, warmup_ratio = 0.05, max_grad_norm = 1.0;
  std::uint64_t seed = 0;
  bool bf16 = false, fp16 = false, use_cpu = false;
};

// Runs the job on this process's rank (RANK/WORLD_SIZE/MASTER_ADDR from the environment).
absl::Status RunMoleculeTraining(const MoleculeTrainArgs& args);

}  // namespace zt::science::molecule

#endif  // ZEROTRAIN_SCIENCE_MOLECULE_TRAIN_H_
