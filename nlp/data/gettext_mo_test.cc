#include "nlp/data/gettext_mo.h"

#include <dirent.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::nlp {
namespace {

using ::testing::HasSubstr;

// A little-endian .mo catalog of `entries` (id, translation), as msgfmt lays it out.
std::string MakeMo(const std::vector<std::pair<std::string, std::string>>& entries) {
  const std::uint32_t n = entries.size();
  std::string head(28, '\0'), tables(16 * n, '\0'), strings;
  auto put = [](std::string& s, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
  };
  put(head, 0, 0x950412de);
  put(head, 8, n);
  put(head, 12, 28);
  put(head, 16, 28 + 8 * n);
  const std::uint32_t base = 28 + 16 * n;
  for (std::uint32_t i = 0; i < n; ++i) {
    for (int which = 0; which < 2; ++which) {
      const std::string& s = which == 0 ? entries[i].first : entries[i].second;
      put(tables, which * 8 * n + i * 8, s.size());
      put(tables, which * 8 * n + i * 8 + 4, base + strings.size());
      strings += s + '\0';
    }
  }
  return head + tables + strings;
}

TEST(GettextMoTest, ReadsPairsSkippingHeaderContextsAndPlurals) {
  const std::string mo = MakeMo({{"", "Project-Id-Version: x\n"},
                                 {"Open file", "Deschide fișierul"},
                                 {std::string("menu\x04Quit"), "Ieșire"},
                                 {std::string("%d file\0%d files", 16), std::string("%d fișier\0%d fișiere", 23)},
                                 {"Untranslated", ""}});
  absl::StatusOr<std::vector<TranslationPair>> p = ParseMo(mo, "x.mo");
  ASSERT_THAT(p.status(), IsOk());
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].source, "Open file");
  EXPECT_EQ((*p)[0].target, "Deschide fișierul");
  EXPECT_EQ((*p)[1].source, "Quit");
  EXPECT_EQ((*p)[2].source, "%d file");
  EXPECT_EQ((*p)[2].target, "%d fișier");
}

TEST(GettextMoTest, DamageIsAnErrorNamingTheFile) {
  std::string mo = MakeMo({{"a", "b"}});
  EXPECT_THAT(ParseMo(mo.substr(0, 20), "short.mo").status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("short.mo")));
  std::string wrong = mo;
  wrong[0] = 'x';
  EXPECT_THAT(ParseMo(wrong, "magic.mo").status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("magic")));
  EXPECT_THAT(ParseMo(mo.substr(0, mo.size() - 3), "cut.mo").status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("outside the file")));
}

TEST(GettextMoTest, DirectoryDeduplicatesAndCleans) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/a.mo", std::ios::binary) << MakeMo({{"Save\nfile", "Salvează\nfișierul"}, {"OK", "Bine"}});
  std::ofstream(dir + "/b.mo", std::ios::binary) << MakeMo({{"OK", "Bine"}, {"...", "..."}});
  std::ofstream(dir + "/c.mo", std::ios::binary) << "junk";
  int skipped = 0;
  absl::StatusOr<std::vector<TranslationPair>> p = ReadMoDirectory(dir, &skipped);
  ASSERT_THAT(p.status(), IsOk());
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].source, "Save file");
  EXPECT_EQ((*p)[0].target, "Salvează fișierul");
  EXPECT_EQ(skipped, 1);
}

// The machine's Romanian catalogs, where installed (the embedded default's data): every one reads.
TEST(GettextMoTest, SystemRomanianCatalogs) {
  const std::string dir = "/usr/share/locale/ro/LC_MESSAGES";
  int catalogs = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) catalogs += absl::EndsWith(e->d_name, ".mo");
    ::closedir(d);
  }
  if (catalogs == 0) GTEST_SKIP() << "no Romanian gettext catalogs in " << dir << " on this machine";
  int skipped = -1;
  absl::StatusOr<std::vector<TranslationPair>> p = ReadMoDirectory(dir, &skipped);
  ASSERT_THAT(p.status(), IsOk());
  EXPECT_EQ(skipped, 0);
  EXPECT_GT(p->size(), static_cast<std::size_t>(catalogs));
}

}  // namespace
}  // namespace zt::nlp
