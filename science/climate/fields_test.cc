// netCDF fields: flags, reading (packing, masking, dim orders, levels, several files), errors,
// Inspect, the write/read round trip, and Debian's libncarg-data files when present.
#include "science/climate/fields.h"

#include <ATen/ATen.h>
#include <netcdf.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::science::climate {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::zt::IsOk;
using ::zt::StatusIs;

#define NC_OK(call)                                                              \
  do {                                                                           \
    const int nc_status_ = (call);                                               \
    ASSERT_EQ(nc_status_, NC_NOERR) << #call << ": " << nc_strerror(nc_status_); \
  } while (false)

std::string TmpDir(const std::string& sub) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + sub;
  std::filesystem::create_directories(dir);
  return dir;
}

// A dimension, written with a coordinate variable (double) when `coord` is not empty.
struct Dim {
  std::string name;
  std::size_t size = 0;
  std::vector<double> coord;
  std::map<std::string, std::string> attributes;
};

struct Var {
  std::string name;
  nc_type type = NC_FLOAT;
  std::vector<std::string> dims;
  std::vector<double> values;  // in the file's dim order, converted to `type` by netCDF
  std::map<std::string, std::string> text;
  std::map<std::string, double> in_type;   // attributes of the variable's own type (_FillValue, missing_value)
  std::map<std::string, double> as_float;  // float attributes (scale_factor, add_offset, ...)
};

void WriteNc(const std::string& path, const std::vector<Dim>& dims, const std::vector<Var>& vars,
             int cmode = NC_CLOBBER) {
  int nc;
  NC_OK(nc_create(path.c_str(), cmode, &nc));
  std::map<std::string, int> dim_ids;
  std::vector<std::pair<int, const Dim*>> coords;
  for (const Dim& d : dims) {
    int id;
    NC_OK(nc_def_dim(nc, d.name.c_str(), d.name == "time" ? NC_UNLIMITED : d.size, &id));
    dim_ids[d.name] = id;
    if (!d.coord.empty()) {
      int var;
      NC_OK(nc_def_var(nc, d.name.c_str(), NC_DOUBLE, 1, &id, &var));
      for (const auto& [k, v] : d.attributes) NC_OK(nc_put_att_text(nc, var, k.c_str(), v.size(), v.data()));
      coords.emplace_back(var, &d);
    }
  }
  std::vector<int> var_ids;
  for (const Var& v : vars) {
    std::vector<int> ids;
    for (const std::string& d : v.dims) ids.push_back(dim_ids.at(d));
    int var;
    NC_OK(nc_def_var(nc, v.name.c_str(), v.type, static_cast<int>(ids.size()), ids.data(), &var));
    for (const auto& [k, s] : v.text) NC_OK(nc_put_att_text(nc, var, k.c_str(), s.size(), s.data()));
    for (const auto& [k, x] : v.in_type) NC_OK(nc_put_att_double(nc, var, k.c_str(), v.type, 1, &x));
    for (const auto& [k, x] : v.as_float) NC_OK(nc_put_att_double(nc, var, k.c_str(), NC_FLOAT, 1, &x));
    var_ids.push_back(var);
  }
  NC_OK(nc_enddef(nc));
  for (const auto& [var, d] : coords) {
    const std::size_t start = 0, count = d->coord.size();
    NC_OK(nc_put_vara_double(nc, var, &start, &count, d->coord.data()));
  }
  for (std::size_t i = 0; i < vars.size(); ++i) {
    std::vector<std::size_t> start(vars[i].dims.size(), 0), count;
    for (const std::string& d : vars[i].dims) {
      for (const Dim& dim : dims) {
        if (dim.name == d) count.push_back(dim.name == "time" ? dim.coord.size() : dim.size);
      }
    }
    NC_OK(nc_put_vara_double(nc, var_ids[i], start.data(), count.data(), vars[i].values.data()));
  }
  NC_OK(nc_close(nc));
}

Dim Time(std::vector<double> t, const std::string& units = "days since 2000-01-01 00:00:00") {
  const std::size_t n = t.size();
  return {"time", n, std::move(t), {{"units", units}, {"calendar", "standard"}, {"standard_name", "time"}}};
}
Dim Lat(std::vector<double> v) {
  const std::size_t n = v.size();
  return {"lat", n, std::move(v), {{"units", "degrees_north"}, {"long_name", "latitude"}}};
}
Dim Lon(std::vector<double> v) {
  const std::size_t n = v.size();
  return {"lon", n, std::move(v), {{"units", "degrees_east"}, {"long_name", "longitude"}}};
}

// value(t, i, j) = base + 100 t + 10 i + j on (time, lat, lon).
std::vector<double> Ramp(const std::vector<double>& times, int h, int w, double base) {
  std::vector<double> v;
  for (double t : times) {
    for (int i = 0; i < h; ++i) {
      for (int j = 0; j < w; ++j) v.push_back(base + 100 * t + 10 * i + j);
    }
  }
  return v;
}

// A (time, lat, lon) float variable `name` in its own file.
std::string SimpleFile(const std::string& dir, const std::string& file, const std::string& name,
                       const std::vector<double>& times, double base = 0, std::vector<double> lat = {10, 0, -10},
                       const std::string& time_units = "days since 2000-01-01 00:00:00") {
  const std::string path = dir + "/" + file;
  const int h = static_cast<int>(lat.size());
  Var v{name, NC_FLOAT, {"time", "lat", "lon"}, Ramp(times, h, 4, base), {{"units", "m s-1"}}, {}, {}};
  WriteNc(path, {Time(times, time_units), Lat(std::move(lat)), Lon({0, 90, 180, 270})}, {v});
  return path;
}

std::vector<FieldSpec> Specs(const std::string& flag) {
  absl::StatusOr<std::vector<FieldSpec>> s = ParseVariables(flag);
  EXPECT_THAT(s, IsOk());
  return s.ok() ? *s : std::vector<FieldSpec>{};
}

// ---- flags -------------------------------------------------------------------------------------

TEST(ParseVariablesTest, NamesAndLevels) {
  absl::StatusOr<std::vector<FieldSpec>> s = ParseVariables(" tas, uas ,vas");
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[1].name, "uas");
  EXPECT_EQ((*s)[1].label, "uas");
  EXPECT_FALSE((*s)[1].level.has_value());

  s = ParseVariables("t@500,z@850.5");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ((*s)[0].name, "t");
  EXPECT_EQ((*s)[0].label, "t@500");
  EXPECT_DOUBLE_EQ(*(*s)[0].level, 500);
  EXPECT_DOUBLE_EQ(*(*s)[1].level, 850.5);
  // The same variable at two levels is two fields.
  EXPECT_THAT(ParseVariables("t@500,t@850"), IsOk());
}

TEST(ParseVariablesTest, ErrorsNameTheItem) {
  EXPECT_THAT(ParseVariables(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(ParseVariables("tas,,uas"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item 2 is empty")));
  EXPECT_THAT(ParseVariables("tas,t@abc"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"t@abc\"")));
  EXPECT_THAT(ParseVariables("t@"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"t@\"")));
  EXPECT_THAT(ParseVariables("@500"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"@500\"")));
  EXPECT_THAT(ParseVariables("tas,uas,tas"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"tas\" is given twice")));
  EXPECT_THAT(ParseVariables("t@500,t@500.0"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(ExpandFilesTest, GlobsSortedPathsKept) {
  const std::string dir = TmpDir("expand");
  for (const char* f : {"b2.nc", "b1.nc", "b10.nc", "c.nc"}) std::ofstream(dir + "/" + f) << "x";
  absl::StatusOr<std::vector<std::string>> files = ExpandFiles(dir + "/c.nc, " + dir + "/b*.nc," + dir + "/c.nc");
  ASSERT_THAT(files, IsOk());
  EXPECT_THAT(*files, ElementsAre(dir + "/c.nc", dir + "/b1.nc", dir + "/b10.nc", dir + "/b2.nc"));
  // A plain path is kept even when missing: ReadFields reports it.
  files = ExpandFiles(dir + "/missing.nc");
  ASSERT_THAT(files, IsOk());
  EXPECT_THAT(*files, ElementsAre(dir + "/missing.nc"));
}

TEST(ExpandFilesTest, Errors) {
  const std::string dir = TmpDir("expand_errors");
  EXPECT_THAT(ExpandFiles(" "), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--files")));
  EXPECT_THAT(ExpandFiles("a.nc,,b.nc"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item 2 is empty")));
  EXPECT_THAT(ExpandFiles(dir + "/z*.nc"),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr(dir + "/z*.nc"), HasSubstr("matches no file"))));
}

// ---- reading -----------------------------------------------------------------------------------

TEST(ReadFieldsTest, PackedShortUnpackedWithFillAsNaN) {
  const std::string path = TmpDir("packed") + "/packed.nc";
  // packed(t, i, j) = 100 t + 10 i + j - 50, with _FillValue -32767 at two positions.
  std::vector<double> packed = Ramp({0, 1}, 3, 4, -50);
  packed[5] = -32767;   // t=0, i=1, j=1
  packed[23] = -32767;  // t=1, i=2, j=3
  Var tas{"tas",
          NC_SHORT,
          {"time", "lat", "lon"},
          packed,
          {{"units", "K"}, {"long_name", "Near-Surface Air Temperature"}, {"cell_methods", "time: mean"}},
          {{"_FillValue", -32767}},
          {{"scale_factor", 0.5}, {"add_offset", 273.0}, {"height", 2.0}}};
  ASSERT_NO_FATAL_FAILURE(WriteNc(path, {Time({0, 1}), Lat({10, 0, -10}), Lon({0, 90, 180, 270})}, {tas}));

  absl::StatusOr<Fields> f = ReadFields({path}, Specs("tas"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{2, 1, 3, 4}));
  EXPECT_EQ(f->values.scalar_type(), at::kFloat);
  EXPECT_THAT(f->lat, ElementsAre(10, 0, -10));  // descending, as in the file
  EXPECT_EQ(f->lat_name, "lat");
  EXPECT_EQ(f->lon_name, "lon");
  EXPECT_EQ(f->time_name, "time");
  EXPECT_EQ(f->time_attributes.at("units"), "days since 2000-01-01 00:00:00");
  const auto v = f->values.accessor<float, 4>();
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 4; ++j) {
        const int k = (t * 3 + i) * 4 + j;
        if (k == 5 || k == 23) {
          EXPECT_TRUE(std::isnan(v[t][0][i][j])) << k;
        } else {
          EXPECT_FLOAT_EQ(v[t][0][i][j], packed[k] * 0.5 + 273.0) << k;
        }
      }
    }
  }
  const VariableInfo& info = f->variables[0];
  EXPECT_EQ(info.masked, 2);
  EXPECT_EQ(info.units, "K");
  EXPECT_EQ(info.long_name, "Near-Surface Air Temperature");
  EXPECT_THAT(info.dims, ElementsAre("time", "lat", "lon"));
  EXPECT_THAT(info.dim_sizes, ElementsAre(2, 3, 4));
  EXPECT_EQ(info.text_attributes.at("cell_methods"), "time: mean");
  EXPECT_EQ(info.number_attributes.count("scale_factor"), 0u);
  EXPECT_EQ(info.number_attributes.count("_FillValue"), 0u);
  EXPECT_DOUBLE_EQ(info.number_attributes.at("height"), 2.0);
  EXPECT_FLOAT_EQ(info.min, -50 * 0.5 + 273.0);
  EXPECT_FLOAT_EQ(info.max, (100 + 20 + 2 - 50) * 0.5 + 273.0);  // 123 - 50 is the fill at (1, 2, 3)
}

// Every numeric type unpacks, and _FillValue / missing_value are compared in the packed type.
TEST(ReadFieldsTest, EveryNumericTypeUnpacksAndMasks) {
  const std::string dir = TmpDir("types");
  for (nc_type type : {NC_BYTE, NC_SHORT, NC_INT, NC_FLOAT, NC_DOUBLE}) {
    SCOPED_TRACE(type);
    const std::string path = dir + "/t" + std::to_string(type) + ".nc";
    std::vector<double> packed = {1, 2, 3, 4, 5, 6, 7, 8};  // time 2, lat 2, lon 2
    packed[1] = -99;                                        // _FillValue
    packed[6] = -98;                                        // missing_value
    Var x{"x",
          type,
          {"time", "lat", "lon"},
          packed,
          {},
          {{"_FillValue", -99}, {"missing_value", -98}},
          {{"scale_factor", 0.25}, {"add_offset", -1}}};
    ASSERT_NO_FATAL_FAILURE(WriteNc(path, {Time({0, 1}), Lat({-45, 45}), Lon({0, 180})}, {x}));
    absl::StatusOr<Fields> f = ReadFields({path}, Specs("x"));
    ASSERT_THAT(f, IsOk());
    const at::Tensor flat = f->values.reshape({-1});
    for (int k = 0; k < 8; ++k) {
      if (k == 1 || k == 6) {
        EXPECT_TRUE(std::isnan(flat[k].item<float>())) << k;
      } else {
        EXPECT_FLOAT_EQ(flat[k].item<float>(), packed[k] * 0.25 - 1) << k;
      }
    }
    EXPECT_EQ(f->variables[0].masked, 2);
  }
}

TEST(ReadFieldsTest, NonFiniteFloatsAreMasked) {
  const std::string path = TmpDir("nonfinite") + "/nan.nc";
  Var x{"x", NC_DOUBLE, {"time", "lat", "lon"}, {1, NAN, INFINITY, 4}, {}, {}, {}};
  ASSERT_NO_FATAL_FAILURE(WriteNc(path, {Time({0}), Lat({-45, 45}), Lon({0, 180})}, {x}));
  absl::StatusOr<Fields> f = ReadFields({path}, Specs("x"));
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->variables[0].masked, 2);
  EXPECT_FLOAT_EQ(f->variables[0].mean, 2.5);
  EXPECT_TRUE(std::isnan(f->values[0][0][1][0].item<float>()));
}

TEST(ReadFieldsTest, LonLatOrderIsTransposed) {
  const std::string path = TmpDir("lonlat") + "/lonlat.nc";
  // Stored as (time, lon, lat) with value 100 t + 10 i(lat) + j(lon).
  std::vector<double> v;
  for (int t = 0; t < 2; ++t) {
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 3; ++i) v.push_back(100 * t + 10 * i + j);
    }
  }
  // Coordinates found by units, not by name.
  Dim lat{"latitude", 3, {-30, 0, 30}, {{"units", "degrees_north"}}};
  Dim lon{"longitude", 4, {0, 90, 180, 270}, {{"units", "degrees_east"}}};
  Var x{"x", NC_FLOAT, {"time", "longitude", "latitude"}, v, {}, {}, {}};
  ASSERT_NO_FATAL_FAILURE(WriteNc(path, {Time({0, 1}), lat, lon}, {x}));
  absl::StatusOr<Fields> f = ReadFields({path}, Specs("x"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{2, 1, 3, 4}));
  EXPECT_EQ(f->lat_name, "latitude");
  EXPECT_EQ(f->lon_name, "longitude");
  EXPECT_THAT(f->variables[0].dims, ElementsAre("time", "longitude", "latitude"));
  const auto a = f->values.accessor<float, 4>();
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(a[t][0][i][j], 100 * t + 10 * i + j);
    }
  }
}

std::string LevelFile(const std::string& dir) {
  const std::string path = dir + "/levels.nc";
  std::vector<double> v;  // (time 1, lev 3, lat 2, lon 2): 1000 * level index + 10 i + j
  for (int l = 0; l < 3; ++l) {
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) v.push_back(1000 * l + 10 * i + j);
    }
  }
  Dim lev{"lev", 3, {1000, 850, 500}, {{"units", "hPa"}}};
  Dim height{"height", 1, {2}, {{"units", "m"}}};
  Var t{"t", NC_DOUBLE, {"time", "lev", "lat", "lon"}, v, {{"units", "K"}}, {}, {}};
  Var tas{"tas", NC_FLOAT, {"time", "height", "lat", "lon"}, {1, 2, 3, 4}, {{"units", "K"}}, {}, {}};
  WriteNc(path, {Time({0}), lev, height, Lat({-45, 45}), Lon({0, 180})}, {t, tas});
  return path;
}

TEST(ReadFieldsTest, LevelSelected) {
  std::string path;
  ASSERT_NO_FATAL_FAILURE(path = LevelFile(TmpDir("level")));
  absl::StatusOr<Fields> f = ReadFields({path}, Specs("t@500,t@1000,tas"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{1, 3, 2, 2}));
  EXPECT_FLOAT_EQ(f->values[0][0][1][1].item<float>(), 2011);
  EXPECT_FLOAT_EQ(f->values[0][1][1][0].item<float>(), 10);
  EXPECT_FLOAT_EQ(f->values[0][2][1][1].item<float>(), 4);  // a level dim of length 1 needs no @
  EXPECT_EQ(f->variables[0].label, "t@500");
  EXPECT_THAT(f->variables[0].dims, ElementsAre("time", "lev", "lat", "lon"));
}

TEST(ReadFieldsTest, LevelErrorsListTheLevels) {
  std::string path;
  ASSERT_NO_FATAL_FAILURE(path = LevelFile(TmpDir("level_errors")));
  EXPECT_THAT(
      ReadFields({path}, Specs("t@700")),
      StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr(path), HasSubstr("t@700"), HasSubstr("no level 700 in lev"),
                                                  HasSubstr("hPa"), HasSubstr("1000, 850, 500"))));
  EXPECT_THAT(ReadFields({path}, Specs("t")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("level dimension lev with 3 levels"), HasSubstr("t@<level>"))));
  const std::string flat = SimpleFile(TmpDir("level_errors"), "flat.nc", "u", {0});
  EXPECT_THAT(ReadFields({flat}, Specs("u@500")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(flat), HasSubstr("no level dimension"))));
}

TEST(ReadFieldsTest, TwoFilesConcatenatedAndSorted) {
  const std::string dir = TmpDir("concat");
  const std::string late = SimpleFile(dir, "late.nc", "u", {2, 3});
  const std::string early = SimpleFile(dir, "early.nc", "u", {0, 1});
  absl::StatusOr<Fields> f = ReadFields({late, early}, Specs("u"));
  ASSERT_THAT(f, IsOk());
  EXPECT_THAT(f->time, ElementsAre(0, 1, 2, 3));
  ASSERT_EQ(f->values.size(0), 4);
  for (int t = 0; t < 4; ++t) EXPECT_FLOAT_EQ(f->values[t][0][2][3].item<float>(), 100 * t + 23) << t;
  EXPECT_THAT(f->variables[0].files, ElementsAre(late, early));
  EXPECT_EQ(f->variables[0].dim_sizes[0], 4);

  // The same time in two files is an error naming both.
  const std::string overlap = SimpleFile(dir, "overlap.nc", "u", {3, 4});
  EXPECT_THAT(ReadFields({late, overlap}, Specs("u")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("time 3 is found twice"), HasSubstr(late), HasSubstr(overlap))));
  // Different time units are not concatenated.
  const std::string other_units = SimpleFile(dir, "hours.nc", "u", {10}, 0, {10, 0, -10}, "hours since 2000-01-01");
  EXPECT_THAT(ReadFields({early, other_units}, Specs("u")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("time units differ"), HasSubstr(early), HasSubstr(other_units))));
}

TEST(ReadFieldsTest, OneVariablePerFile) {
  const std::string dir = TmpDir("per_file");
  const std::string tas = SimpleFile(dir, "tas.nc", "tas", {0, 1}, 1000);
  const std::string uas = SimpleFile(dir, "uas.nc", "uas", {0, 1}, 2000);
  absl::StatusOr<Fields> f = ReadFields({tas, uas}, Specs("uas,tas"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{2, 2, 3, 4}));
  EXPECT_FLOAT_EQ(f->values[1][0][0][0].item<float>(), 2100);
  EXPECT_FLOAT_EQ(f->values[1][1][0][0].item<float>(), 1100);
  EXPECT_THAT(f->variables[0].files, ElementsAre(uas));
  EXPECT_THAT(f->variables[1].files, ElementsAre(tas));

  // Different time axes: the error names both files.
  const std::string vas = SimpleFile(dir, "vas.nc", "vas", {0, 2}, 3000);
  EXPECT_THAT(ReadFields({tas, vas}, Specs("tas,vas")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("time axes differ"), HasSubstr(tas), HasSubstr(vas), HasSubstr("step 1"))));
  const std::string short_vas = SimpleFile(dir, "vas1.nc", "vas", {0}, 3000);
  EXPECT_THAT(ReadFields({tas, short_vas}, Specs("tas,vas")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("2 steps"), HasSubstr("1 steps"))));
}

TEST(ReadFieldsTest, Errors) {
  const std::string dir = TmpDir("errors");
  const std::string tas = SimpleFile(dir, "tas.nc", "tas", {0});
  const std::string uas = SimpleFile(dir, "uas.nc", "uas", {0});
  // A variable in none of the files lists what they have (not the coordinates).
  absl::StatusOr<Fields> f = ReadFields({tas, uas}, Specs("tas,pr"));
  EXPECT_THAT(f,
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("variable pr"), HasSubstr("none of the 2 file(s)"),
                                                          HasSubstr("they have: tas, uas"))));
  EXPECT_THAT(f.status().message(), Not(HasSubstr("lat,")));
  // Grid mismatch names both files.
  const std::string other_grid = SimpleFile(dir, "vas.nc", "vas", {0}, 0, {20, 0, -20});
  EXPECT_THAT(ReadFields({tas, other_grid}, Specs("tas,vas")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("grid mismatch"), HasSubstr(tas),
                                                                 HasSubstr(other_grid), HasSubstr("latitude"))));
  const std::string smaller = SimpleFile(dir, "ps.nc", "ps", {0}, 0, {0, 10});
  EXPECT_THAT(ReadFields({tas, smaller}, Specs("tas,ps")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("3 values"), HasSubstr("2 values"))));
  // Missing file.
  EXPECT_THAT(ReadFields({tas, dir + "/nope.nc"}, Specs("tas")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/nope.nc")));
  // Not netCDF: nc_strerror's text.
  const std::string text = dir + "/notes.nc";
  std::ofstream(text) << "this is not a netCDF file\n";
  EXPECT_THAT(ReadFields({text}, Specs("tas")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(text), HasSubstr("NetCDF: "))));
  // A constant field.
  const std::string orog = dir + "/orog.nc";
  Var o{"orog", NC_FLOAT, {"lat", "lon"}, {1, 2, 3, 4}, {}, {}, {}};
  ASSERT_NO_FATAL_FAILURE(WriteNc(orog, {Lat({-45, 45}), Lon({0, 180})}, {o}));
  EXPECT_THAT(ReadFields({orog}, Specs("orog")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(orog), HasSubstr("orog (lat, lon)"),
                                                                 HasSubstr("constant fields are not supported"))));
  // A rotated grid: no latitude dimension.
  const std::string rot = dir + "/rotated.nc";
  Var r{"r", NC_FLOAT, {"time", "rlat", "rlon"}, {1, 2, 3, 4}, {}, {}, {}};
  Dim rlat{"rlat", 2, {-1, 1}, {{"units", "degrees"}}}, rlon{"rlon", 2, {-1, 1}, {{"units", "degrees"}}};
  ASSERT_NO_FATAL_FAILURE(WriteNc(rot, {Time({0}), rlat, rlon}, {r}));
  EXPECT_THAT(ReadFields({rot}, Specs("r")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(rot), HasSubstr("no latitude dimension"))));
}

TEST(InspectTest, MentionsUnitsAndStatistics) {
  const std::string dir = TmpDir("inspect");
  const std::string path = SimpleFile(dir, "u.nc", "u", {0, 1});
  absl::StatusOr<Fields> f = ReadFields({path}, Specs("u"));
  ASSERT_THAT(f, IsOk());
  const std::string text = Inspect(*f);
  EXPECT_THAT(text, HasSubstr(path));
  EXPECT_THAT(text, HasSubstr("[m s-1]"));
  EXPECT_THAT(text, HasSubstr("dims: time=2, lat=3, lon=4"));
  EXPECT_THAT(text, HasSubstr("min 0  mean 61.5  max 123  masked 0"));
  EXPECT_THAT(text, HasSubstr("lat 3 (10 .. -10, descending) degrees_north"));
  EXPECT_THAT(text, HasSubstr("time: 2 steps, 0 .. 1 days since 2000-01-01"));
  EXPECT_THAT(text, HasSubstr("2000-01-01 00:00 .. 2000-01-02 00:00"));
}

TEST(WriteFieldsTest, RoundTrip) {
  std::string dir = TmpDir("roundtrip"), src;
  ASSERT_NO_FATAL_FAILURE(src = LevelFile(dir));
  absl::StatusOr<Fields> f = ReadFields({src}, Specs("t@500,tas"));
  ASSERT_THAT(f, IsOk());
  at::Tensor pred = f->values.clone();
  pred[0][1][0][1] = NAN;
  const std::string out = dir + "/pred.nc";
  ASSERT_THAT(WriteFields(out, *f, pred, {0.5}), IsOk());
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp." + std::to_string(getpid())));

  absl::StatusOr<Fields> g = ReadFields({out}, Specs("t_500,tas"));
  ASSERT_THAT(g, IsOk());
  EXPECT_THAT(g->time, ElementsAre(0.5));
  EXPECT_EQ(g->lat, f->lat);
  EXPECT_EQ(g->lon, f->lon);
  EXPECT_EQ(g->time_attributes.at("units"), "days since 2000-01-01 00:00:00");
  EXPECT_EQ(g->time_attributes.at("calendar"), "standard");
  EXPECT_EQ(g->lat_attributes.at("long_name"), "latitude");
  EXPECT_EQ(g->variables[0].units, "K");
  EXPECT_EQ(g->variables[1].masked, 1);
  EXPECT_TRUE(at::allclose(g->values.nan_to_num(-1), pred.nan_to_num(-1)));
  EXPECT_TRUE(std::isnan(g->values[0][1][0][1].item<float>()));
  EXPECT_THAT(g->variables[0].dims, ElementsAre("time", "lat", "lon"));

  // Overwrites in place; shape errors name the dimension.
  EXPECT_THAT(WriteFields(out, *f, pred, {0.5}), IsOk());
  EXPECT_THAT(WriteFields(out, *f, pred, {0.5, 1.5}),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(out), HasSubstr("time"))));
  EXPECT_THAT(WriteFields(out, *f, pred.narrow(3, 0, 1), {0.5}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lon")));
  EXPECT_THAT(WriteFields(dir + "/no/such/dir/p.nc", *f, pred, {0.5}), Not(IsOk()));
}

// ---- Debian's libncarg-data --------------------------------------------------------------------

constexpr char kNug[] = "/usr/share/ncarg/data/nug/";

TEST(RealDataTest, NcargRectilinearTasUasVas) {
  std::vector<std::string> files;
  for (const char* v : {"tas", "uas", "vas"}) files.push_back(std::string(kNug) + v + "_rectilinear_grid_2D.nc");
  for (const std::string& p : files) {
    if (!std::filesystem::exists(p)) GTEST_SKIP() << p << " is absent (Debian package libncarg-data)";
  }
  absl::StatusOr<Fields> f = ReadFields(files, Specs("tas,uas,vas"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{12, 3, 96, 192}));
  EXPECT_EQ(f->time_attributes.at("units"), "days since 1850-01-01 00:00:00");
  EXPECT_NEAR(f->lat.front(), -88.57, 0.01);
  EXPECT_NEAR(f->lat.back(), 88.57, 0.01);
  EXPECT_DOUBLE_EQ(f->lon.front(), 0);
  EXPECT_NEAR(f->lon.back(), 358.125, 1e-6);
  const VariableInfo& tas = f->variables[0];
  EXPECT_EQ(tas.units, "K");
  EXPECT_GT(tas.min, 180);
  EXPECT_LT(tas.max, 340);
  EXPECT_GT(tas.mean, 260);
  EXPECT_LT(tas.mean, 300);
  for (int v = 1; v < 3; ++v) {
    EXPECT_EQ(f->variables[v].units, "m s-1");
    EXPECT_GT(f->variables[v].min, -50);
    EXPECT_LT(f->variables[v].max, 50);
  }
  for (const VariableInfo& v : f->variables) EXPECT_EQ(v.masked, 0) << v.label;
  EXPECT_THAT(Inspect(*f), HasSubstr("2005-01-16"));
  std::cout << Inspect(*f);
}

TEST(RealDataTest, NcargTasModelHistoryAndScenario) {
  const std::string hist = std::string(kNug) + "tas_mod1_hist_rectilin_grid_2D.nc";
  const std::string rcp = std::string(kNug) + "tas_mod1_rcp45_rectilin_grid_2D.nc";
  if (!std::filesystem::exists(hist) || !std::filesystem::exists(rcp)) {
    GTEST_SKIP() << hist << " is absent (Debian package libncarg-data)";
  }
  absl::StatusOr<Fields> f = ReadFields({rcp, hist}, Specs("tas"));  // (time, height=1, lat=1, lon=1)
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{56 + 93, 1, 1, 1}));
  EXPECT_LT(f->time.front(), f->time.back());
  EXPECT_GT(f->variables[0].min, 280);
  EXPECT_LT(f->variables[0].max, 310);
  std::cout << Inspect(*f);
}

TEST(RealDataTest, NcargLevelsAndDescendingLatitudes) {
  const std::string grid3d = std::string(kNug) + "rectilinear_grid_3D.nc";  // t(time, lev, lat, lon), lev in Pa
  const std::string uv300 = std::string(kNug) + "uv300.nc";                 // time in "month", _FillValue -999
  if (!std::filesystem::exists(grid3d) || !std::filesystem::exists(uv300)) {
    GTEST_SKIP() << grid3d << " is absent (Debian package libncarg-data)";
  }
  absl::StatusOr<Fields> f = ReadFields({grid3d}, Specs("t@50000,t@85000"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{1, 2, 96, 192}));
  EXPECT_GT(f->lat.front(), f->lat.back());  // descending, kept
  EXPECT_DOUBLE_EQ(f->lon.front(), -180);
  EXPECT_EQ(f->variables[0].units, "K");
  EXPECT_LT(f->variables[0].mean, f->variables[1].mean);  // colder at 500 hPa than at 850 hPa
  EXPECT_GT(f->variables[0].min, 180);
  EXPECT_LT(f->variables[1].max, 330);
  EXPECT_THAT(ReadFields({grid3d}, Specs("t@500")),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("(units Pa)"), HasSubstr("100000, 92500"))));

  f = ReadFields({uv300}, Specs("U,V"));
  ASSERT_THAT(f, IsOk());
  ASSERT_EQ(f->values.sizes(), (std::vector<std::int64_t>{2, 2, 64, 128}));
  EXPECT_THAT(f->time, ElementsAre(1, 7));
  EXPECT_EQ(f->time_name, "time");
  EXPECT_GT(f->variables[0].min, -100);
  EXPECT_LT(f->variables[0].max, 100);
}

}  // namespace
}  // namespace zt::science::climate
