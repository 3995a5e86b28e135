#include <GraphMol/Descriptors/MolDescriptors.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>

#include <memory>

#include "gtest/gtest.h"

namespace {

TEST(RdKit, ParsesSmilesAndComputesDescriptors) {
  std::unique_ptr<RDKit::RWMol> mol(RDKit::SmilesToMol("CC(=O)Oc1ccccc1C(=O)O"));  // aspirin
  ASSERT_NE(mol, nullptr);
  EXPECT_EQ(mol->getNumAtoms(), 13u);
  EXPECT_EQ(RDKit::Descriptors::calcMolFormula(*mol), "C9H8O4");
  EXPECT_NEAR(RDKit::Descriptors::calcAMW(*mol), 180.159, 1e-3);
  EXPECT_EQ(RDKit::MolToSmiles(*mol), "CC(=O)Oc1ccccc1C(=O)O");
}

}  // namespace
