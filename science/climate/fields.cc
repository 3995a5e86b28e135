#include "science/climate/fields.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <glob.h>
#include <netcdf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace zt::science::climate {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kWriteFill = 1e20f;
constexpr double kGridTolerance = 1e-5;   // relative, degrees stored as float or double
constexpr double kTimeTolerance = 1e-9;   // relative
constexpr double kLevelTolerance = 1e-6;  // relative

bool Near(double a, double b, double rel) { return std::abs(a - b) <= rel * std::max({1.0, std::abs(a), std::abs(b)}); }

std::string Num(double x) { return absl::StrFormat("%.6g", x); }

// Up to `max` values, then "... (n in all)".
std::string ListValues(const std::vector<double>& v, std::size_t max = 40) {
  std::vector<std::string> s;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) s.push_back(Num(v[i]));
  std::string out = absl::StrJoin(s, ", ");
  if (v.size() > max) absl::StrAppend(&out, ", ... (", v.size(), " in all)");
  return out;
}

std::string ListNames(const std::vector<std::string>& v, std::size_t max = 8) {
  std::vector<std::string> s(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(v.size(), max)));
  std::string out = absl::StrJoin(s, ", ");
  if (v.size() > max) absl::StrAppend(&out, ", ... (", v.size(), " in all)");
  return out;
}

// ---- netCDF helpers --------------------------------------------------------------------------

class NcHandle {
 public:
  NcHandle() = default;
  ~NcHandle() { Close(); }
  NcHandle(const NcHandle&) = delete;
  NcHandle& operator=(const NcHandle&) = delete;
  int* out() { return &id_; }
  int id() const { return id_; }
  void Close() {
    if (id_ >= 0) nc_close(id_);
    id_ = -1;
  }
  // Closes and reports the status (a file being written is only complete after nc_close).
  int CloseChecked() {
    const int s = id_ >= 0 ? nc_close(id_) : NC_NOERR;
    id_ = -1;
    return s;
  }

 private:
  int id_ = -1;
};

std::string NcName(int nc, int var) {
  char name[NC_MAX_NAME + 1] = {0};
  nc_inq_varname(nc, var, name);
  return name;
}

std::string DimName(int nc, int dim) {
  char name[NC_MAX_NAME + 1] = {0};
  nc_inq_dimname(nc, dim, name);
  return name;
}

std::size_t DimLen(int nc, int dim) {
  std::size_t len = 0;
  nc_inq_dimlen(nc, dim, &len);
  return len;
}

std::vector<int> VarDims(int nc, int var) {
  int ndims = 0;
  nc_inq_varndims(nc, var, &ndims);
  std::vector<int> dims(static_cast<std::size_t>(ndims));
  if (ndims > 0) nc_inq_vardimid(nc, var, dims.data());
  return dims;
}

// A text attribute (NC_CHAR, or a single NC_STRING), trailing NULs removed.
std::optional<std::string> TextAtt(int nc, int var, const char* name) {
  nc_type type;
  std::size_t len = 0;
  if (nc_inq_att(nc, var, name, &type, &len) != NC_NOERR) return std::nullopt;
  if (type == NC_CHAR) {
    std::string s(len, '\0');
    if (len > 0 && nc_get_att_text(nc, var, name, s.data()) != NC_NOERR) return std::nullopt;
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }
  if (type == NC_STRING && len >= 1) {
    std::vector<char*> p(len, nullptr);
    if (nc_get_att_string(nc, var, name, p.data()) != NC_NOERR) return std::nullopt;
    std::vector<std::string> parts;
    for (char* c : p) parts.push_back(c != nullptr ? c : "");
    nc_free_string(len, p.data());
    return absl::StrJoin(parts, ",");
  }
  return std::nullopt;
}

std::map<std::string, std::string> TextAtts(int nc, int var) {
  std::map<std::string, std::string> out;
  int natts = 0;
  nc_inq_varnatts(nc, var, &natts);
  for (int i = 0; i < natts; ++i) {
    char name[NC_MAX_NAME + 1] = {0};
    if (nc_inq_attname(nc, var, i, name) != NC_NOERR) continue;
    if (std::optional<std::string> s = TextAtt(nc, var, name)) out[name] = *s;
  }
  return out;
}

bool IsPackingAtt(absl::string_view name) {
  return name == "scale_factor" || name == "add_offset" || name == "_FillValue" || name == "missing_value";
}

std::map<std::string, double> NumberAtts(int nc, int var) {
  std::map<std::string, double> out;
  int natts = 0;
  nc_inq_varnatts(nc, var, &natts);
  for (int i = 0; i < natts; ++i) {
    char name[NC_MAX_NAME + 1] = {0};
    if (nc_inq_attname(nc, var, i, name) != NC_NOERR || IsPackingAtt(name)) continue;
    nc_type type;
    std::size_t len = 0;
    if (nc_inq_att(nc, var, name, &type, &len) != NC_NOERR || len != 1) continue;
    if (type == NC_CHAR || type == NC_STRING || type > NC_STRING) continue;
    double d = 0;
    if (nc_get_att_double(nc, var, name, &d) == NC_NOERR) out[name] = d;
  }
  return out;
}

// The coordinate variable of a dimension: a 1-D variable of the same name over it.
int CoordVar(int nc, int dim) {
  int var = -1;
  if (nc_inq_varid(nc, DimName(nc, dim).c_str(), &var) != NC_NOERR) return -1;
  const std::vector<int> dims = VarDims(nc, var);
  return dims.size() == 1 && dims[0] == dim ? var : -1;
}

std::vector<double> ReadDoubles(int nc, int var, std::size_t n, int* status) {
  std::vector<double> v(n);
  *status = n > 0 ? nc_get_var_double(nc, var, v.data()) : NC_NOERR;
  return v;
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

enum class DimKind { kTime, kLat, kLon, kOther };

bool IsLatUnits(const std::string& u) {
  const std::string l = Lower(u);
  return l == "degrees_north" || l == "degree_north" || l == "degrees_n" || l == "degree_n" || l == "degreesn" ||
         l == "degreen";
}
bool IsLonUnits(const std::string& u) {
  const std::string l = Lower(u);
  return l == "degrees_east" || l == "degree_east" || l == "degrees_e" || l == "degree_e" || l == "degreese" ||
         l == "degreee";
}

DimKind ClassifyDim(int nc, int dim) {
  const std::string name = Lower(DimName(nc, dim));
  const int coord = CoordVar(nc, dim);
  if (coord >= 0) {
    const std::string units = TextAtt(nc, coord, "units").value_or("");
    const std::string standard = Lower(TextAtt(nc, coord, "standard_name").value_or(""));
    if (IsLatUnits(units) || standard == "latitude") return DimKind::kLat;
    if (IsLonUnits(units) || standard == "longitude") return DimKind::kLon;
    if (absl::StrContains(Lower(units), " since ") || standard == "time") return DimKind::kTime;
  }
  if (name == "lat" || name == "latitude" || name == "y") return DimKind::kLat;
  if (name == "lon" || name == "longitude" || name == "x") return DimKind::kLon;
  if (name == "time") return DimKind::kTime;
  return DimKind::kOther;
}

// Typed reads, so that fill values compare in the packed type.
template <typename T>
int GetVara(int nc, int var, const std::size_t* start, const std::size_t* count, T* out) {
  if constexpr (std::is_same_v<T, signed char>) return nc_get_vara_schar(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, unsigned char>) return nc_get_vara_uchar(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, short>) return nc_get_vara_short(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, unsigned short>) return nc_get_vara_ushort(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, int>) return nc_get_vara_int(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, unsigned int>) return nc_get_vara_uint(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, long long>) return nc_get_vara_longlong(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, unsigned long long>) return nc_get_vara_ulonglong(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, float>) return nc_get_vara_float(nc, var, start, count, out);
  if constexpr (std::is_same_v<T, double>) return nc_get_vara_double(nc, var, start, count, out);
}

template <typename T>
int GetAtt(int nc, int var, const char* name, T* out) {
  if constexpr (std::is_same_v<T, signed char>) return nc_get_att_schar(nc, var, name, out);
  if constexpr (std::is_same_v<T, unsigned char>) return nc_get_att_uchar(nc, var, name, out);
  if constexpr (std::is_same_v<T, short>) return nc_get_att_short(nc, var, name, out);
  if constexpr (std::is_same_v<T, unsigned short>) return nc_get_att_ushort(nc, var, name, out);
  if constexpr (std::is_same_v<T, int>) return nc_get_att_int(nc, var, name, out);
  if constexpr (std::is_same_v<T, unsigned int>) return nc_get_att_uint(nc, var, name, out);
  if constexpr (std::is_same_v<T, long long>) return nc_get_att_longlong(nc, var, name, out);
  if constexpr (std::is_same_v<T, unsigned long long>) return nc_get_att_ulonglong(nc, var, name, out);
  if constexpr (std::is_same_v<T, float>) return nc_get_att_float(nc, var, name, out);
  if constexpr (std::is_same_v<T, double>) return nc_get_att_double(nc, var, name, out);
}

// Reads a hyperslab as T, masks _FillValue / missing_value (in T) and non-finite values, and
// unpacks into out[0..n).
template <typename T>
int ReadUnpacked(int nc, int var, const std::size_t* start, const std::size_t* count, std::size_t n, float* out) {
  std::vector<T> raw(n);
  if (n > 0) {
    const int s = GetVara<T>(nc, var, start, count, raw.data());
    if (s != NC_NOERR) return s;
  }
  std::vector<T> fills;
  for (const char* att : {"_FillValue", "missing_value"}) {
    nc_type type;
    std::size_t len = 0;
    if (nc_inq_att(nc, var, att, &type, &len) != NC_NOERR || len == 0 || type == NC_CHAR || type == NC_STRING) {
      continue;
    }
    std::vector<T> v(len);
    if (GetAtt<T>(nc, var, att, v.data()) == NC_NOERR) fills.insert(fills.end(), v.begin(), v.end());
  }
  double scale = 1, offset = 0;
  nc_get_att_double(nc, var, "scale_factor", &scale);  // left as is when absent
  nc_get_att_double(nc, var, "add_offset", &offset);
  for (std::size_t i = 0; i < n; ++i) {
    const T v = raw[i];
    bool masked = false;
    if constexpr (std::is_floating_point_v<T>) masked = !std::isfinite(v);
    for (const T f : fills) masked = masked || v == f;
    const float x = masked ? kNaN : static_cast<float>(static_cast<double>(v) * scale + offset);
    out[i] = std::isfinite(x) ? x : kNaN;
  }
  return NC_NOERR;
}

int ReadUnpackedAny(int nc, int var, nc_type type, const std::size_t* start, const std::size_t* count, std::size_t n,
                    float* out) {
  switch (type) {
    case NC_BYTE:
      return ReadUnpacked<signed char>(nc, var, start, count, n, out);
    case NC_UBYTE:
      return ReadUnpacked<unsigned char>(nc, var, start, count, n, out);
    case NC_SHORT:
      return ReadUnpacked<short>(nc, var, start, count, n, out);
    case NC_USHORT:
      return ReadUnpacked<unsigned short>(nc, var, start, count, n, out);
    case NC_INT:
      return ReadUnpacked<int>(nc, var, start, count, n, out);
    case NC_UINT:
      return ReadUnpacked<unsigned int>(nc, var, start, count, n, out);
    case NC_INT64:
      return ReadUnpacked<long long>(nc, var, start, count, n, out);
    case NC_UINT64:
      return ReadUnpacked<unsigned long long>(nc, var, start, count, n, out);
    case NC_FLOAT:
      return ReadUnpacked<float>(nc, var, start, count, n, out);
    case NC_DOUBLE:
      return ReadUnpacked<double>(nc, var, start, count, n, out);
    default:
      return NC_EBADTYPE;
  }
}

// ---- reading one variable from one file ------------------------------------------------------

struct Coord {
  std::string name;
  std::vector<double> values;
  std::map<std::string, std::string> attributes;
};

// One variable as read from one file.
struct Piece {
  std::size_t file = 0;
  std::vector<std::string> dims;
  std::vector<std::int64_t> dim_sizes;
  Coord time, lat, lon;
  std::map<std::string, std::string> text_attributes;
  std::map<std::string, double> number_attributes;
  at::Tensor data;  // [t, H, W] float32
};

absl::StatusOr<Coord> ReadCoord(int nc, int dim, const std::string& path, const std::string& var_desc,
                                absl::string_view what) {
  Coord c;
  c.name = DimName(nc, dim);
  const int var = CoordVar(nc, dim);
  if (var < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": variable ", var_desc, ": its ", what, " dimension ", c.name,
                                                   " has no coordinate variable ", c.name));
  }
  int status = NC_NOERR;
  c.values = ReadDoubles(nc, var, DimLen(nc, dim), &status);
  if (status != NC_NOERR) {
    return absl::DataLossError(
        absl::StrCat(path, ": cannot read coordinate variable ", c.name, ": ", nc_strerror(status)));
  }
  c.attributes = TextAtts(nc, var);
  return c;
}

std::string DimList(const std::vector<std::string>& dims) { return absl::StrCat("(", absl::StrJoin(dims, ", "), ")"); }

absl::StatusOr<Piece> ReadPiece(int nc, int var, const std::string& path, const FieldSpec& spec) {
  Piece p;
  nc_type type;
  nc_inq_vartype(nc, var, &type);
  const std::vector<int> dims = VarDims(nc, var);
  for (const int d : dims) {
    p.dims.push_back(DimName(nc, d));
    p.dim_sizes.push_back(static_cast<std::int64_t>(DimLen(nc, d)));
  }
  const std::string desc = absl::StrCat(spec.name, " ", DimList(p.dims));
  int time_i = -1, lat_i = -1, lon_i = -1;
  std::vector<int> other;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    int* slot = nullptr;
    switch (ClassifyDim(nc, dims[i])) {
      case DimKind::kTime:
        slot = &time_i;
        break;
      case DimKind::kLat:
        slot = &lat_i;
        break;
      case DimKind::kLon:
        slot = &lon_i;
        break;
      case DimKind::kOther:
        other.push_back(i);
        continue;
    }
    if (*slot >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": variable ", desc, ": dimensions ", p.dims[*slot], " and ",
                                                     p.dims[i], " are both ",
                                                     slot == &time_i  ? "time"
                                                     : slot == &lat_i ? "latitude"
                                                                      : "longitude"));
    }
    *slot = i;
  }
  if (time_i < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": variable ", desc, " has no time dimension: constant fields are not supported"));
  }
  if (lat_i < 0 || lon_i < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": variable ", desc, " has no ", lat_i < 0 ? "latitude" : "longitude",
        " dimension (one whose coordinate has units ", lat_i < 0 ? "degrees_north" : "degrees_east",
        " or standard_name ", lat_i < 0 ? "latitude, or named lat/latitude/y" : "longitude, or named lon/longitude/x",
        "); rotated-pole and unstructured grids are not supported"));
  }
  if (other.size() > 1) {
    std::vector<std::string> names;
    for (const int i : other) names.push_back(p.dims[i]);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": variable ", desc,
                     " has more than one dimension besides time, lat and lon: ", absl::StrJoin(names, ", ")));
  }
  if (type == NC_CHAR || type == NC_STRING || type > NC_STRING) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": variable ", desc, " is not numeric (netCDF type ", type, ")"));
  }

  std::vector<std::size_t> start(dims.size(), 0), count(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) count[i] = static_cast<std::size_t>(p.dim_sizes[i]);
  if (!other.empty()) {
    const int li = other[0];
    const std::string& level_dim = p.dims[li];
    if (spec.level.has_value()) {
      ASSIGN_OR_RETURN(Coord level, ReadCoord(nc, dims[li], path, desc, "level"));
      int found = -1;
      for (std::size_t k = 0; k < level.values.size(); ++k) {
        if (Near(level.values[k], *spec.level, kLevelTolerance)) found = static_cast<int>(k);
      }
      if (found < 0) {
        const auto units = level.attributes.find("units");
        return absl::NotFoundError(
            absl::StrCat(path, ": ", spec.label, ": variable ", desc, " has no level ", Num(*spec.level), " in ",
                         level_dim, units != level.attributes.end() ? absl::StrCat(" (units ", units->second, ")") : "",
                         "; its levels are ", ListValues(level.values)));
      }
      start[li] = static_cast<std::size_t>(found);
    } else if (p.dim_sizes[li] != 1) {
      std::string levels;
      absl::StatusOr<Coord> level = ReadCoord(nc, dims[li], path, desc, "level");
      if (level.ok()) levels = absl::StrCat(": ", ListValues(level->values));
      return absl::InvalidArgumentError(absl::StrCat(path, ": variable ", desc, " has a level dimension ", level_dim,
                                                     " with ", p.dim_sizes[li], " levels", levels, "; select one as ",
                                                     spec.name, "@<level>"));
    }
    count[li] = 1;
  } else if (spec.level.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": variable ", desc, " has no level dimension, but ",
                                                   spec.label, " asks for level ", Num(*spec.level)));
  }

  ASSIGN_OR_RETURN(p.time, ReadCoord(nc, dims[time_i], path, desc, "time"));
  ASSIGN_OR_RETURN(p.lat, ReadCoord(nc, dims[lat_i], path, desc, "latitude"));
  ASSIGN_OR_RETURN(p.lon, ReadCoord(nc, dims[lon_i], path, desc, "longitude"));
  p.text_attributes = TextAtts(nc, var);
  p.number_attributes = NumberAtts(nc, var);

  // Read in the file's order (level squeezed), then permute to (time, lat, lon).
  std::vector<std::int64_t> shape;
  std::vector<int> kept;  // file dim index of each shape entry
  std::size_t n = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (!other.empty() && static_cast<int>(i) == other[0]) continue;
    shape.push_back(static_cast<std::int64_t>(count[i]));
    kept.push_back(static_cast<int>(i));
    n *= count[i];
  }
  at::Tensor raw = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  const int status = ReadUnpackedAny(nc, var, type, start.data(), count.data(), n, raw.data_ptr<float>());
  if (status != NC_NOERR) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read variable ", desc, ": ", nc_strerror(status)));
  }
  auto pos = [&](int file_dim) {
    return static_cast<std::int64_t>(std::find(kept.begin(), kept.end(), file_dim) - kept.begin());
  };
  p.data = raw.permute({pos(time_i), pos(lat_i), pos(lon_i)}).contiguous();
  return p;
}

// Data variables of a file (not coordinates, not bounds), for the "in none of the files" error.
void DataVariables(int nc, std::set<std::string>* out) {
  int nvars = 0;
  nc_inq_nvars(nc, &nvars);
  std::set<std::string> bounds;
  for (int v = 0; v < nvars; ++v) {
    for (const char* att : {"bounds", "climatology"}) {
      if (std::optional<std::string> b = TextAtt(nc, v, att)) bounds.insert(*b);
    }
  }
  for (int v = 0; v < nvars; ++v) {
    const std::string name = NcName(nc, v);
    const std::vector<int> dims = VarDims(nc, v);
    if (dims.size() == 1 && DimName(nc, dims[0]) == name) continue;
    if (bounds.count(name) > 0) continue;
    out->insert(name);
  }
}

absl::Status CheckGrid(const Coord& a, const std::string& file_a, const Coord& b, const std::string& file_b,
                       const std::string& label, absl::string_view what) {
  bool same = a.values.size() == b.values.size();
  std::size_t bad = 0;
  for (std::size_t i = 0; same && i < a.values.size(); ++i) {
    if (!Near(a.values[i], b.values[i], kGridTolerance)) {
      same = false;
      bad = i;
    }
  }
  if (same) return absl::OkStatus();
  auto range = [](const Coord& c) {
    return c.values.empty()
               ? std::string("empty")
               : absl::StrCat(c.values.size(), " values, ", Num(c.values.front()), " .. ", Num(c.values.back()));
  };
  std::string detail;
  if (a.values.size() == b.values.size()) {
    detail = absl::StrCat("; they differ at index ", bad, ": ", Num(a.values[bad]), " vs ", Num(b.values[bad]));
  }
  return absl::InvalidArgumentError(absl::StrCat("grid mismatch reading ", label, ": ", file_a, " has ", what, " ",
                                                 a.name, " (", range(a), ") but ", file_b, " has ", what, " ", b.name,
                                                 " (", range(b), ")", detail));
}

// ---- time units, for Inspect -----------------------------------------------------------------

// "days since 1850-01-01 00:00:00" on a standard calendar -> a date, else "".
std::string DecodeTime(double value, const std::map<std::string, std::string>& attributes) {
  const auto units_it = attributes.find("units");
  if (units_it == attributes.end()) return "";
  const auto cal_it = attributes.find("calendar");
  const std::string calendar = cal_it == attributes.end() ? "" : Lower(cal_it->second);
  if (!calendar.empty() && calendar != "standard" && calendar != "gregorian" && calendar != "proleptic_gregorian") {
    return "";
  }
  const std::string units = Lower(std::string(absl::StripAsciiWhitespace(units_it->second)));
  const std::size_t since = units.find(" since ");
  if (since == std::string::npos) return "";
  const std::string unit = units.substr(0, since);
  double seconds = 0;
  if (unit == "days" || unit == "day" || unit == "d") {
    seconds = 86400;
  } else if (unit == "hours" || unit == "hour" || unit == "hrs" || unit == "hr" || unit == "h") {
    seconds = 3600;
  } else if (unit == "minutes" || unit == "minute" || unit == "mins" || unit == "min") {
    seconds = 60;
  } else if (unit == "seconds" || unit == "second" || unit == "secs" || unit == "sec" || unit == "s") {
    seconds = 1;
  } else {
    return "";
  }
  std::string ref = units.substr(since + 7);
  std::replace(ref.begin(), ref.end(), 't', ' ');
  std::vector<std::string> parts = absl::StrSplit(ref, ' ', absl::SkipEmpty());
  if (parts.empty()) return "";
  std::vector<std::string> ymd = absl::StrSplit(parts[0], '-');
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double s = 0;
  if (ymd.size() != 3 || !absl::SimpleAtoi(ymd[0], &y) || !absl::SimpleAtoi(ymd[1], &mo) ||
      !absl::SimpleAtoi(ymd[2], &d)) {
    return "";
  }
  if (parts.size() > 1) {
    std::vector<std::string> hms = absl::StrSplit(absl::StripSuffix(parts[1], "z"), ':');
    if (!hms.empty() && !absl::SimpleAtoi(hms[0], &h)) return "";
    if (hms.size() > 1 && !absl::SimpleAtoi(hms[1], &mi)) return "";
    if (hms.size() > 2 && !absl::SimpleAtod(hms[2], &s)) return "";
  }
  const absl::Time base = absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
  const absl::Time t = base + absl::Seconds(s + value * seconds);
  return absl::FormatTime("%Y-%m-%d %H:%M", t, absl::UTCTimeZone());
}

}  // namespace

// ---- flags -----------------------------------------------------------------------------------

absl::StatusOr<std::vector<FieldSpec>> ParseVariables(const std::string& flag) {
  if (absl::StripAsciiWhitespace(flag).empty()) {
    return absl::InvalidArgumentError("--variables: empty; give e.g. tas,uas,vas or t@500,z@850");
  }
  std::vector<FieldSpec> specs;
  int index = 0;
  for (absl::string_view raw : absl::StrSplit(flag, ',')) {
    ++index;
    const std::string item(absl::StripAsciiWhitespace(raw));
    if (item.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--variables \"", flag, "\": item ", index, " is empty"));
    }
    FieldSpec spec;
    spec.label = item;
    const std::size_t at = item.find('@');
    spec.name = std::string(absl::StripAsciiWhitespace(absl::string_view(item).substr(0, at)));
    if (spec.name.empty() || spec.name.find_first_of(" \t@/") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--variables: item \"", item, "\" has no valid variable name"));
    }
    if (at != std::string::npos) {
      const std::string level(absl::StripAsciiWhitespace(absl::string_view(item).substr(at + 1)));
      double v = 0;
      if (level.empty() || !absl::SimpleAtod(level, &v) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat("--variables: item \"", item, "\": level \"", level,
                                                       "\" is not a number (write name@level, e.g. t@500)"));
      }
      spec.level = v;
      spec.label = absl::StrCat(spec.name, "@", level);
    }
    for (const FieldSpec& s : specs) {
      if (s.name == spec.name && s.level.has_value() == spec.level.has_value() &&
          (!s.level.has_value() || *s.level == *spec.level)) {
        return absl::InvalidArgumentError(absl::StrCat("--variables: \"", item, "\" is given twice"));
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<std::vector<std::string>> ExpandFiles(const std::string& flag) {
  if (absl::StripAsciiWhitespace(flag).empty()) return absl::InvalidArgumentError("--files: empty");
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& f) {
    if (seen.insert(f).second) out.push_back(f);
  };
  int index = 0;
  for (absl::string_view raw : absl::StrSplit(flag, ',')) {
    ++index;
    const std::string item(absl::StripAsciiWhitespace(raw));
    if (item.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--files \"", flag, "\": item ", index, " is empty"));
    }
    const std::string path = UserPath(item);
    if (path.find_first_of("*?[") == std::string::npos) {
      add(path);
      continue;
    }
    glob_t g;
    std::memset(&g, 0, sizeof(g));
    const int rc = glob(path.c_str(), GLOB_TILDE, nullptr, &g);
    std::vector<std::string> matches;
    for (std::size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (rc == GLOB_NOMATCH || (rc == 0 && matches.empty())) {
      return absl::NotFoundError(absl::StrCat("--files: pattern \"", item, "\"",
                                              path != item ? absl::StrCat(" (", path, ")") : "", " matches no file"));
    }
    if (rc != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--files: pattern \"", item, "\": glob failed (",
                                                     rc == GLOB_NOSPACE ? "out of memory" : "read error", ")"));
    }
    std::sort(matches.begin(), matches.end());
    for (const std::string& m : matches) add(m);
  }
  return out;
}

// ---- ReadFields ------------------------------------------------------------------------------

absl::StatusOr<Fields> ReadFields(const std::vector<std::string>& files, const std::vector<FieldSpec>& specs) {
  if (files.empty()) return absl::InvalidArgumentError("ReadFields: no files");
  if (specs.empty()) return absl::InvalidArgumentError("ReadFields: no variables");
  std::vector<std::vector<Piece>> pieces(specs.size());
  std::set<std::string> available;
  // The first piece read: its grid and time units are the reference for all others.
  std::optional<Piece> ref;
  std::string ref_label;

  for (std::size_t f = 0; f < files.size(); ++f) {
    const std::string& path = files[f];
    if (!PathExists(path)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    if (!IsRegularFile(path)) return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    NcHandle nc;
    const int s = nc_open(path.c_str(), NC_NOWRITE, nc.out());
    if (s != NC_NOERR) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open as netCDF: ", nc_strerror(s)));
    }
    DataVariables(nc.id(), &available);
    for (std::size_t v = 0; v < specs.size(); ++v) {
      int var = -1;
      if (nc_inq_varid(nc.id(), specs[v].name.c_str(), &var) != NC_NOERR) continue;
      ASSIGN_OR_RETURN(Piece piece, ReadPiece(nc.id(), var, path, specs[v]));
      piece.file = f;
      if (ref.has_value()) {
        RETURN_IF_ERROR(CheckGrid(ref->lat, files[ref->file], piece.lat, path, specs[v].label, "latitude"));
        RETURN_IF_ERROR(CheckGrid(ref->lon, files[ref->file], piece.lon, path, specs[v].label, "longitude"));
        for (const char* att : {"units", "calendar"}) {
          const auto a = ref->time.attributes.find(att);
          const auto b = piece.time.attributes.find(att);
          const bool both = a != ref->time.attributes.end() && b != piece.time.attributes.end();
          const bool one = (a != ref->time.attributes.end()) != (b != piece.time.attributes.end());
          if ((both && absl::StripAsciiWhitespace(a->second) != absl::StripAsciiWhitespace(b->second)) ||
              (one && std::string(att) == "units")) {
            return absl::InvalidArgumentError(absl::StrCat("time ", att, " differ: ", files[ref->file], " (", ref_label,
                                                           ") has \"", a != ref->time.attributes.end() ? a->second : "",
                                                           "\" but ", path, " (", specs[v].label, ") has \"",
                                                           b != piece.time.attributes.end() ? b->second : "", "\""));
          }
        }
      }
      if (!ref.has_value()) {
        ref = piece;  // shares the data tensor
        ref_label = specs[v].label;
      }
      pieces[v].push_back(std::move(piece));
    }
  }
  for (std::size_t v = 0; v < specs.size(); ++v) {
    if (!pieces[v].empty()) continue;
    return absl::NotFoundError(absl::StrCat("variable ", specs[v].name, " (", specs[v].label, ") is in none of the ",
                                            files.size(), " file(s) ", ListNames(files, 5), "; they have: ",
                                            available.empty() ? "no data variables" : absl::StrJoin(available, ", ")));
  }

  Fields out;
  out.files = files;
  out.lat = ref->lat.values;
  out.lon = ref->lon.values;
  out.lat_name = ref->lat.name;
  out.lon_name = ref->lon.name;
  out.time_name = ref->time.name;
  out.lat_attributes = ref->lat.attributes;
  out.lon_attributes = ref->lon.attributes;
  out.time_attributes = ref->time.attributes;
  const std::int64_t H = static_cast<std::int64_t>(out.lat.size()), W = static_cast<std::int64_t>(out.lon.size());

  // Per variable: the pieces concatenated in file order, then sorted by time.
  std::vector<at::Tensor> sorted(specs.size());
  std::vector<std::vector<std::size_t>> step_file(specs.size());  // file of each sorted step
  for (std::size_t v = 0; v < specs.size(); ++v) {
    std::vector<double> t;
    std::vector<std::size_t> file_of;
    std::vector<at::Tensor> parts;
    for (const Piece& p : pieces[v]) {
      t.insert(t.end(), p.time.values.begin(), p.time.values.end());
      file_of.insert(file_of.end(), p.time.values.size(), p.file);
      parts.push_back(p.data);
    }
    std::vector<std::int64_t> order(t.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return t[a] < t[b]; });
    std::vector<double> st(t.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      st[i] = t[order[i]];
      step_file[v].push_back(file_of[order[i]]);
      if (i > 0 && Near(st[i], st[i - 1], kTimeTolerance)) {
        return absl::InvalidArgumentError(absl::StrCat("variable ", specs[v].label, ": time ", Num(st[i]),
                                                       " is found twice, in ", files[step_file[v][i - 1]], " and ",
                                                       files[step_file[v][i]]));
      }
    }
    const at::Tensor all = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
    const at::Tensor index =
        at::from_blob(order.data(), {static_cast<std::int64_t>(order.size())}, at::TensorOptions().dtype(at::kLong))
            .clone();
    sorted[v] = all.index_select(0, index);
    if (v == 0) {
      out.time = st;
      continue;
    }
    // The same time axis as the first variable.
    const std::size_t n = std::min(st.size(), out.time.size());
    std::size_t bad = n;
    for (std::size_t i = 0; i < n && bad == n; ++i) {
      if (!Near(st[i], out.time[i], kTimeTolerance)) bad = i;
    }
    if (bad < n || st.size() != out.time.size()) {
      // Name the files the differing step came from (or the first files when only the lengths differ).
      const std::string& fa = files[bad < n ? step_file[0][bad] : pieces[0][0].file];
      const std::string& fb = files[bad < n ? step_file[v][bad] : pieces[v][0].file];
      return absl::InvalidArgumentError(
          absl::StrCat("time axes differ: ", specs[0].label, " has ", out.time.size(), " steps (", fa, ") and ",
                       specs[v].label, " has ", st.size(), " steps (", fb, ")",
                       bad < n ? absl::StrCat("; step ", bad, " is ", Num(out.time[bad]), " vs ", Num(st[bad])) : ""));
    }
  }

  const std::int64_t T = static_cast<std::int64_t>(out.time.size());
  const std::int64_t V = static_cast<std::int64_t>(specs.size());
  out.values = at::empty({T, V, H, W}, at::TensorOptions().dtype(at::kFloat));
  for (std::size_t v = 0; v < specs.size(); ++v) {
    out.values.select(1, static_cast<std::int64_t>(v)).copy_(sorted[v]);
    const Piece& first = pieces[v][0];
    VariableInfo info;
    info.label = specs[v].label;
    info.name = specs[v].name;
    info.dims = first.dims;
    info.dim_sizes = first.dim_sizes;
    for (std::size_t i = 0; i < info.dims.size(); ++i) {
      if (info.dims[i] == first.time.name) info.dim_sizes[i] = T;
    }
    for (const Piece& p : pieces[v]) info.files.push_back(files[p.file]);
    info.text_attributes = first.text_attributes;
    info.number_attributes = first.number_attributes;
    if (auto it = info.text_attributes.find("units"); it != info.text_attributes.end()) info.units = it->second;
    if (auto it = info.text_attributes.find("long_name"); it != info.text_attributes.end()) info.long_name = it->second;
    const at::Tensor d = sorted[v].contiguous();
    const float* x = d.data_ptr<float>();
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
    std::int64_t count = 0;
    for (std::int64_t i = 0, n = d.numel(); i < n; ++i) {
      if (std::isnan(x[i])) {
        ++info.masked;
        continue;
      }
      lo = std::min(lo, static_cast<double>(x[i]));
      hi = std::max(hi, static_cast<double>(x[i]));
      sum += x[i];
      ++count;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    info.min = count > 0 ? lo : nan;
    info.max = count > 0 ? hi : nan;
    info.mean = count > 0 ? sum / static_cast<double>(count) : nan;
    out.variables.push_back(std::move(info));
  }
  return out;
}

// ---- Inspect ---------------------------------------------------------------------------------

std::string Inspect(const Fields& f) {
  std::string s;
  absl::StrAppend(&s, "files: ", f.files.size(), "\n");
  for (const std::string& file : f.files) absl::StrAppend(&s, "  ", file, "\n");
  auto axis = [](const std::string& name, const std::vector<double>& v, const std::map<std::string, std::string>& a) {
    std::string r = absl::StrCat(name.empty() ? "?" : name, " ", v.size());
    if (!v.empty()) {
      absl::StrAppend(&r, " (", Num(v.front()), " .. ", Num(v.back()));
      if (v.size() > 1) absl::StrAppend(&r, v.back() < v.front() ? ", descending" : ", ascending");
      absl::StrAppend(&r, ")");
    }
    if (auto it = a.find("units"); it != a.end()) absl::StrAppend(&r, " ", it->second);
    return r;
  };
  absl::StrAppend(&s, "grid: ", axis(f.lat_name, f.lat, f.lat_attributes), " x ",
                  axis(f.lon_name, f.lon, f.lon_attributes), "\n");
  absl::StrAppend(&s, "time: ", f.time.size(), " steps");
  if (!f.time.empty()) {
    absl::StrAppend(&s, ", ", Num(f.time.front()), " .. ", Num(f.time.back()));
    if (auto it = f.time_attributes.find("units"); it != f.time_attributes.end()) {
      absl::StrAppend(&s, " ", it->second);
    }
    if (auto it = f.time_attributes.find("calendar"); it != f.time_attributes.end()) {
      absl::StrAppend(&s, " (calendar ", it->second, ")");
    }
    const std::string a = DecodeTime(f.time.front(), f.time_attributes);
    const std::string b = DecodeTime(f.time.back(), f.time_attributes);
    if (!a.empty() && !b.empty()) absl::StrAppend(&s, " = ", a, " .. ", b);
  }
  absl::StrAppend(&s, "\n");
  absl::StrAppend(&s, "variables: ", f.variables.size(), "\n");
  for (const VariableInfo& v : f.variables) {
    absl::StrAppend(&s, "  ", v.label);
    if (!v.long_name.empty()) absl::StrAppend(&s, ": ", v.long_name);
    absl::StrAppend(&s, " [", v.units.empty() ? "no units" : v.units, "]\n");
    absl::StrAppend(&s, "    files: ", absl::StrJoin(v.files, ", "), "\n");
    std::vector<std::string> dims;
    for (std::size_t i = 0; i < v.dims.size(); ++i) {
      dims.push_back(absl::StrCat(v.dims[i], "=", i < v.dim_sizes.size() ? v.dim_sizes[i] : -1));
    }
    absl::StrAppend(&s, "    dims: ", absl::StrJoin(dims, ", "), "\n");
    absl::StrAppend(&s, "    min ", Num(v.min), "  mean ", Num(v.mean), "  max ", Num(v.max), "  masked ", v.masked,
                    "\n");
  }
  return s;
}

// ---- WriteFields -----------------------------------------------------------------------------

namespace {

bool SkipOnWrite(const std::string& name) {
  return name.empty() || name[0] == '_' || name == "bounds" || name == "coordinates" || name == "grid_mapping" ||
         name == "cell_measures" || name == "climatology";
}

int PutText(int nc, int var, const std::map<std::string, std::string>& atts) {
  for (const auto& [name, value] : atts) {
    if (SkipOnWrite(name)) continue;
    const int s = nc_put_att_text(nc, var, name.c_str(), value.size(), value.data());
    if (s != NC_NOERR) return s;
  }
  return NC_NOERR;
}

}  // namespace

absl::Status WriteFields(const std::string& path, const Fields& like, const at::Tensor& values,
                         const std::vector<double>& time) {
  const std::int64_t V = static_cast<std::int64_t>(like.variables.size());
  const std::int64_t H = static_cast<std::int64_t>(like.lat.size()), W = static_cast<std::int64_t>(like.lon.size());
  const std::int64_t T = static_cast<std::int64_t>(time.size());
  if (!values.defined() || values.dim() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": WriteFields needs values [T, V, H, W]"));
  }
  if (!values.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": WriteFields needs floating-point values"));
  }
  const std::vector<std::int64_t> want = {T, V, H, W};
  const char* names[] = {"time", "variables", "lat", "lon"};
  for (int i = 0; i < 4; ++i) {
    if (values.size(i) != want[i]) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": values have ", values.size(i), " ", names[i],
                                                     " entries (dim ", i, ") but ", want[i], " are expected"));
    }
  }
  const at::Tensor x = values.to(at::kCPU, at::kFloat).contiguous();

  const std::string time_name = like.time_name.empty() ? "time" : like.time_name;
  const std::string lat_name = like.lat_name.empty() ? "lat" : like.lat_name;
  const std::string lon_name = like.lon_name.empty() ? "lon" : like.lon_name;
  std::vector<std::string> var_names;
  std::set<std::string> used = {time_name, lat_name, lon_name};
  for (const VariableInfo& v : like.variables) {
    std::string name = absl::StrReplaceAll(v.label.empty() ? v.name : v.label, {{"@", "_"}});
    if (!used.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": variable name ", name, " (from ", v.label,
                                                     ") is used twice or clashes with a coordinate"));
    }
    var_names.push_back(name);
  }

  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  NcHandle nc;
  auto fail = [&](absl::string_view what, int status) {
    nc.Close();
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": cannot write netCDF (", what, "): ", nc_strerror(status)));
  };
  int s = nc_create(tmp.c_str(), NC_CLOBBER | NC_NETCDF4 | NC_CLASSIC_MODEL, nc.out());
  if (s != NC_NOERR) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot create ", tmp, ": ", nc_strerror(s)));
  }
  int time_dim, lat_dim, lon_dim, time_var, lat_var, lon_var;
  if ((s = nc_def_dim(nc.id(), time_name.c_str(), NC_UNLIMITED, &time_dim)) != NC_NOERR) return fail("time", s);
  if ((s = nc_def_dim(nc.id(), lat_name.c_str(), static_cast<std::size_t>(H), &lat_dim)) != NC_NOERR) {
    return fail(lat_name, s);
  }
  if ((s = nc_def_dim(nc.id(), lon_name.c_str(), static_cast<std::size_t>(W), &lon_dim)) != NC_NOERR) {
    return fail(lon_name, s);
  }
  if ((s = nc_def_var(nc.id(), time_name.c_str(), NC_DOUBLE, 1, &time_dim, &time_var)) != NC_NOERR) {
    return fail(time_name, s);
  }
  if ((s = nc_def_var(nc.id(), lat_name.c_str(), NC_DOUBLE, 1, &lat_dim, &lat_var)) != NC_NOERR) {
    return fail(lat_name, s);
  }
  if ((s = nc_def_var(nc.id(), lon_name.c_str(), NC_DOUBLE, 1, &lon_dim, &lon_var)) != NC_NOERR) {
    return fail(lon_name, s);
  }
  std::map<std::string, std::string> lat_atts = like.lat_attributes, lon_atts = like.lon_attributes;
  lat_atts.emplace("units", "degrees_north");
  lat_atts.emplace("standard_name", "latitude");
  lon_atts.emplace("units", "degrees_east");
  lon_atts.emplace("standard_name", "longitude");
  if ((s = PutText(nc.id(), time_var, like.time_attributes)) != NC_NOERR) return fail("time attributes", s);
  if ((s = PutText(nc.id(), lat_var, lat_atts)) != NC_NOERR) return fail("lat attributes", s);
  if ((s = PutText(nc.id(), lon_var, lon_atts)) != NC_NOERR) return fail("lon attributes", s);
  std::vector<int> vars(var_names.size());
  const int dims[3] = {time_dim, lat_dim, lon_dim};
  for (std::size_t v = 0; v < var_names.size(); ++v) {
    if ((s = nc_def_var(nc.id(), var_names[v].c_str(), NC_FLOAT, 3, dims, &vars[v])) != NC_NOERR) {
      return fail(var_names[v], s);
    }
    std::map<std::string, std::string> atts = like.variables[v].text_attributes;
    if (!like.variables[v].units.empty()) atts.emplace("units", like.variables[v].units);
    if (!like.variables[v].long_name.empty()) atts.emplace("long_name", like.variables[v].long_name);
    if ((s = PutText(nc.id(), vars[v], atts)) != NC_NOERR) return fail(var_names[v], s);
    if ((s = nc_put_att_float(nc.id(), vars[v], "_FillValue", NC_FLOAT, 1, &kWriteFill)) != NC_NOERR) {
      return fail(var_names[v], s);
    }
  }
  const std::string conventions = "CF-1.7";
  nc_put_att_text(nc.id(), NC_GLOBAL, "Conventions", conventions.size(), conventions.data());
  const std::string source = "zerotrain science/climate";
  nc_put_att_text(nc.id(), NC_GLOBAL, "source", source.size(), source.data());
  if ((s = nc_enddef(nc.id())) != NC_NOERR) return fail("enddef", s);

  const std::size_t zero = 0, nt = static_cast<std::size_t>(T);
  if (T > 0 && (s = nc_put_vara_double(nc.id(), time_var, &zero, &nt, time.data())) != NC_NOERR) {
    return fail(time_name, s);
  }
  if (H > 0 && (s = nc_put_var_double(nc.id(), lat_var, like.lat.data())) != NC_NOERR) return fail(lat_name, s);
  if (W > 0 && (s = nc_put_var_double(nc.id(), lon_var, like.lon.data())) != NC_NOERR) return fail(lon_name, s);
  const float* data = x.data_ptr<float>();
  const std::size_t plane = static_cast<std::size_t>(H * W);
  std::vector<float> buf(static_cast<std::size_t>(T) * plane);
  for (std::size_t v = 0; v < var_names.size(); ++v) {
    for (std::int64_t t = 0; t < T; ++t) {
      const float* src = data + (static_cast<std::size_t>(t * V) + v) * plane;
      float* dst = buf.data() + static_cast<std::size_t>(t) * plane;
      for (std::size_t i = 0; i < plane; ++i) dst[i] = std::isfinite(src[i]) ? src[i] : kWriteFill;
    }
    const std::size_t start[3] = {0, 0, 0};
    const std::size_t count[3] = {nt, static_cast<std::size_t>(H), static_cast<std::size_t>(W)};
    if (!buf.empty() && (s = nc_put_vara_float(nc.id(), vars[v], start, count, buf.data())) != NC_NOERR) {
      return fail(var_names[v], s);
    }
  }
  if ((s = nc.CloseChecked()) != NC_NOERR) return fail("close", s);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": cannot rename ", tmp, " into place: ", std::strerror(e)));
  }
  return absl::OkStatus();
}

}  // namespace zt::science::climate
