// Gridded climate fields from netCDF files (CMIP / ClimaX-style), for the climate job: select
// variables (and levels), read them from one or more files concatenated along time, unpack and
// mask them into one [T, V, H, W] float tensor, describe them, and write predictions back in the
// same layout so that xarray / CDO / ncview open them.
//
//   ASSIGN_OR_RETURN(std::vector<FieldSpec> specs, ParseVariables("tas,uas,vas"));   // or "t@500,z@850"
//   ASSIGN_OR_RETURN(std::vector<std::string> files, ExpandFiles("data/*.nc"));
//   ASSIGN_OR_RETURN(Fields fields, ReadFields(files, specs));
//   std::cout << Inspect(fields);            // --inspect
//   fields.values;                            // [T, V, H, W] float32, NaN where masked
//   RETURN_IF_ERROR(WriteFields("pred.nc", fields, predictions, valid_times));
//
// A field is a variable with dims (time, [level,] lat, lon) in any order: lat and lon are the dims
// whose coordinate variables have units degrees_north / degrees_east or standard_name latitude /
// longitude (else dims named lat/latitude/y, lon/longitude/x); time is the dim whose coordinate
// has units "<unit> since <date>" (else a dim named time).  A level dim of length 1 (CMIP's
// height = 2 m) needs no "@level".  Values are unpacked as packed * scale_factor + add_offset;
// _FillValue / missing_value (compared in the packed type) and non-finite values become NaN.
// Rotated-pole and unstructured grids (2-D or 1-D lat/lon over cells) are not supported.
//
// netCDF stays inside fields.cc: this header does not include it.
#ifndef ZEROTRAIN_SCIENCE_CLIMATE_FIELDS_H_
#define ZEROTRAIN_SCIENCE_CLIMATE_FIELDS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zt::science::climate {

// One selected field: a variable, optionally one level of a variable with a level dimension
// ("t@500": the level whose coordinate value is 500, within a relative 1e-6).
struct FieldSpec {
  std::string name;
  std::optional<double> level;
  std::string label;  // "t@500" (as typed) or "tas"
};

// "tas,uas,vas" or "t@500,z@850" (spaces around items are ignored); errors name the bad item
// (empty item, empty name, a level that is not a finite number, a repeated field).
absl::StatusOr<std::vector<FieldSpec>> ParseVariables(const std::string& flag);

// A comma-separated list, each item a path or a glob(3) pattern (relative paths are relative to
// where `bazel run` was started, zt::UserPath).  A glob's matches are sorted; a pattern that
// matches nothing is an error naming it.  A plain path is kept as is (ReadFields checks it); a
// file listed twice is kept once.
absl::StatusOr<std::vector<std::string>> ExpandFiles(const std::string& flag);

struct VariableInfo {
  std::string label, name, units, long_name;
  std::vector<std::string> dims;                       // as in the (first) file, e.g. {"time", "lat", "lon"}
  std::vector<std::int64_t> dim_sizes;                 // one per dim; time's is the total over the files
  std::vector<std::string> files;                      // the files it was read from, in the order given
  std::map<std::string, std::string> text_attributes;  // every text attribute, to write back
  std::map<std::string, double> number_attributes;     // scalar numeric attributes except the packing/fill ones
  double min = 0, mean = 0, max = 0;                   // after unpacking and masking (NaN if all masked)
  std::int64_t masked = 0;                             // values that were _FillValue/missing_value/NaN
};

struct Fields {
  std::vector<std::string> files;
  std::vector<double> lat, lon;               // as in the file (lat may be descending)
  std::string lat_name, lon_name, time_name;  // the coordinate (and dim) names found
  std::map<std::string, std::string> lat_attributes, lon_attributes, time_attributes;  // their text attributes
  std::vector<double> time;             // raw time coordinate values, sorted ascending
  std::vector<VariableInfo> variables;  // one per FieldSpec, in the same order
  at::Tensor values;                    // [T, V, H, W] float32 on the CPU, (lat, lon) as in the file, NaN where masked
};

// Reads the selected fields from the files.  Each variable is read from every file that has it
// (one variable per file, as ClimaX keeps tas.nc, uas.nc, is fine) and concatenated along time,
// then sorted by time; all variables must end with the same time axis and grid, and all files
// the same time units.  Errors name the file and the variable or dimension: a missing file, a
// file that is not netCDF, a variable in none of the files (listing the ones they have), a level
// that is not there (listing the levels), no time dimension ("constant fields are not
// supported"), a grid or time mismatch (naming both files), a time value found twice.
absl::StatusOr<Fields> ReadFields(const std::vector<std::string>& files, const std::vector<FieldSpec>& specs);

// --inspect's text: the files, the grid and time range, then per variable its file(s), dims
// with sizes, units, long name, min/mean/max and masked count.
std::string Inspect(const Fields& f);

// Writes values [T, V, H, W] (float32, or any floating type) as a NETCDF4 (classic model) file:
// dims (time, lat, lon) named as in `like`, coordinate variables lat/lon from `like` and time
// from `time`, with `like`'s text attributes; one float variable per label ('@' becomes '_':
// "t@500" -> t_500) with its text attributes and _FillValue = 1e20f standing for NaN.  Written
// to a temporary name beside `path` and renamed into place.
absl::Status WriteFields(const std::string& path, const Fields& like, const at::Tensor& values,
                         const std::vector<double>& time);

}  // namespace zt::science::climate

#endif  // ZEROTRAIN_SCIENCE_CLIMATE_FIELDS_H_
