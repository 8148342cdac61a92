/*
 * Unit tests of the output file. One line per test, "PASS <name>" or "FAIL <name>: <reason>", then
 * "N passed, N failed" (tests/unit/check.h); each test gets a fresh scratch directory.
 */
#include "outfile.h"
#include "util.h"

#include "fixtures.h"

/* ---- outfile.h ------------------------------------------------------------------------------ */

TEST(outfile_commit)
{
	char path[PATH_MAX], names[1024], want[1024];
	struct out_file *f;
	struct stat st;
	mode_t mask;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK_STR(out_file__path(f), path);
	CHECK(access(path, F_OK) && errno == ENOENT, "the destination exists before commit");
	/* Unnamed until it is complete (O_TMPFILE; the test directory's filesystem has it). */
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	CHECK_INT(out_file__commit(f, "profile data", 12), 0);
	TRY(file_is(path, "profile data"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	mask = umask(0);
	umask(mask);
	CHECK(!stat(path, &st), "stat %s", path);
	CHECK_INT(st.st_mode & 0777, 0600); /* private, whatever the umask */

	/* An empty commit is an empty file, not a missing one. */
	snprintf(path, sizeof(path), "%s/empty", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK_INT(out_file__commit(f, NULL, 0), 0);
	TRY(file_is(path, ""));
	snprintf(want, sizeof(want), "empty out.pb.gz");
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, want);
	return true;
}

TEST(outfile_abort)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	out_file__abort(f);
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	out_file__abort(NULL);
	return true;
}

TEST(outfile_errors)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f = NULL;

	snprintf(path, sizeof(path), "%s/no/such/dir/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), -ENOENT);
	CHECK_INT(out_file__open(tmp, &f), -EISDIR);
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	return true;
}

TEST(outfile_replace)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	TRY(write_file(path, "old profile", 11));
	CHECK_INT(out_file__open(path, &f), 0);
	TRY(file_is(path, "old profile"));
	CHECK_INT(out_file__commit(f, "new", 3), 0);
	TRY(file_is(path, "new"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");

	/* An abort leaves the old file as it was. */
	CHECK_INT(out_file__open(path, &f), 0);
	out_file__abort(f);
	TRY(file_is(path, "new"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	return true;
}

/*
 * A commit whose write fails (here: the file size limit) returns the error, removes the
 * temporary file, keeps the old destination, and leaks no descriptor.
 */
TEST(outfile_commit_error)
{
	char path[PATH_MAX], names[1024], target[PATH_MAX], data[16384];
	struct rlimit old, lim;
	struct out_file *f;
	void (*old_handler)(int);
	int fd, err;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	TRY(write_file(path, "old", 3));
	memset(data, 'p', sizeof(data));
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK(!getrlimit(RLIMIT_FSIZE, &old), "getrlimit");
	lim = old;
	lim.rlim_cur = 4096;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	CHECK(!setrlimit(RLIMIT_FSIZE, &lim), "setrlimit");
	err = out_file__commit(f, data, sizeof(data));
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);
	CHECK_INT(err, -EFBIG);
	TRY(file_is(path, "old"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	fd = fd_under(tmp, target, sizeof(target));
	CHECK(fd < 0, "descriptor %d still open on \"%s\" after the failed commit", fd, target);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(outfile_commit),
	T(outfile_abort),
	T(outfile_errors),
	T(outfile_replace),
	T(outfile_commit_error),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
