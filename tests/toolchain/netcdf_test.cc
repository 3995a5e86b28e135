#include <netcdf.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace {

#define NC_OK(call) ASSERT_EQ((call), NC_NOERR) << #call << ": " << nc_strerror(call)

TEST(NetCdf, WritesAndReadsANetCdf4Variable) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/field.nc";
  int ncid, dims[2], var;
  float out[2][3] = {{1, 2, 3}, {4, 5, 6}};
  NC_OK(nc_create(path.c_str(), NC_CLOBBER | NC_NETCDF4, &ncid));
  NC_OK(nc_def_dim(ncid, "lat", 2, &dims[0]));
  NC_OK(nc_def_dim(ncid, "lon", 3, &dims[1]));
  NC_OK(nc_def_var(ncid, "tas", NC_FLOAT, 2, dims, &var));
  NC_OK(nc_put_att_text(ncid, var, "units", 1, "K"));
  NC_OK(nc_enddef(ncid));
  NC_OK(nc_put_var_float(ncid, var, &out[0][0]));
  NC_OK(nc_close(ncid));

  float in[2][3] = {};
  int fmt = 0;
  char units[8] = {};
  NC_OK(nc_open(path.c_str(), NC_NOWRITE, &ncid));
  NC_OK(nc_inq_format(ncid, &fmt));
  NC_OK(nc_inq_varid(ncid, "tas", &var));
  NC_OK(nc_get_var_float(ncid, var, &in[0][0]));
  NC_OK(nc_get_att_text(ncid, var, "units", units));
  NC_OK(nc_close(ncid));
  EXPECT_EQ(fmt, NC_FORMAT_NETCDF4);
  EXPECT_EQ(in[1][2], 6.0f);
  EXPECT_EQ(std::string(units), "K");
  std::remove(path.c_str());
}

}  // namespace
