/*
 * Unit tests of `allocprof record`'s command line (user/options.c), which need no root: every
 * option's good and bad values, -- CMD, the conflicts between options and targets, pid lists,
 * durations and sizes with their suffixes. A bad command line is one line naming the problem
 * and ending with the hint, and the value 2 (allocprof's exit status); the tests read that line
 * from a file put over fd 2 while the parser runs.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "util.h"

#include "check.h"

#define HINT " (see allocprof record --help)\n"

/* argv for the parser, as main() passes it: "record" first, NULL last. */
#define ARGS(...) ((char *[]){ "record", __VA_ARGS__, NULL })

/* What one parse did: its value and everything it wrote to stderr and stdout. */
struct parse {
	int ret;
	char err[2048];
	char out[8192];
};

/* Puts a temporary file over `fd`; returns the saved original, or -1. */
static int capture_fd(int fd, FILE **tmp)
{
	int saved;

	*tmp = tmpfile();
	if (!*tmp)
		return -1;
	saved = dup(fd);
	if (saved < 0 || dup2(fileno(*tmp), fd) < 0) {
		fclose(*tmp);
		return -1;
	}
	return saved;
}

/* Puts `saved` back over `fd` and reads what was written meanwhile into buf. */
static void release_fd(int fd, int saved, FILE *tmp, char *buf, size_t len)
{
	size_t n;

	dup2(saved, fd);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, len - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

/* Runs record_opts__parse on argv (NULL-terminated), capturing both streams. */
static bool parse(char **argv, struct record_opts *o, struct parse *p)
{
	int argc = 0, saved_err, saved_out;
	FILE *terr, *tout;

	while (argv[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	saved_err = capture_fd(STDERR_FILENO, &terr);
	CHECK(saved_err >= 0, "capturing stderr: %s", strerror(errno));
	saved_out = capture_fd(STDOUT_FILENO, &tout);
	if (saved_out < 0) {
		release_fd(STDERR_FILENO, saved_err, terr, p->err, sizeof(p->err));
		CHECK(false, "capturing stdout: %s", strerror(errno));
	}
	verbose = 0;
	p->ret = record_opts__parse(argc, argv, o);
	fflush(stdout);
	fflush(stderr);
	release_fd(STDOUT_FILENO, saved_out, tout, p->out, sizeof(p->out));
	release_fd(STDERR_FILENO, saved_err, terr, p->err, sizeof(p->err));
	return true;
}

/* argv parses: value 0, nothing printed. The caller frees *o. */
static bool good(char **argv, struct record_opts *o)
{
	struct parse p;

	TRY(parse(argv, o, &p));
	CHECK(p.ret == 0, "value %d, stderr \"%s\"", p.ret, p.err);
	CHECK_STR(p.err, "");
	CHECK_STR(p.out, "");
	return true;
}

/* argv is refused: value 2, stderr exactly one line, "allocprof: <line>" and the hint. */
static bool refused(char **argv, const char *line)
{
	struct record_opts o;
	struct parse p;
	char want[1024];

	TRY(parse(argv, &o, &p));
	record_opts__free(&o);
	snprintf(want, sizeof(want), "allocprof: %s" HINT, line);
	CHECK(p.ret == 2, "value %d for the command line refused with \"%s\"", p.ret, line);
	CHECK_STR(p.err, want);
	CHECK_STR(p.out, "");
	return true;
}

/* The pids a list parses to, in order. */
static bool pids_are(char **argv, const pid_t *want, size_t n)
{
	struct record_opts o;

	TRY(good(argv, &o));
	CHECK(o.npids == n, "%zu pids, expected %zu", o.npids, n);
	for (size_t i = 0; i < n; i++)
		if (o.pids[i] != want[i]) {
			record_opts__free(&o);
			CHECK(false, "pid %zu is %d, expected %d", i, (int)o.pids[i], (int)want[i]);
		}
	record_opts__free(&o);
	return true;
}

static bool duration_is(const char *arg, uint64_t ns)
{
	struct record_opts o;

	TRY(good(ARGS("-p", "1", "-d", (char *)arg), &o));
	record_opts__free(&o);
	CHECK(o.duration_ns == ns, "-d %s: %llu ns, expected %llu", arg,
	      (unsigned long long)o.duration_ns, (unsigned long long)ns);
	return true;
}

static bool sample_bytes_is(const char *arg, uint64_t bytes)
{
	struct record_opts o;

	TRY(good(ARGS("--sample-bytes", (char *)arg, "-p", "1"), &o));
	record_opts__free(&o);
	CHECK(o.sample_bytes == bytes, "--sample-bytes %s: %llu, expected %llu", arg,
	      (unsigned long long)o.sample_bytes, (unsigned long long)bytes);
	return true;
}

/* ---- defaults and every option's good values ------------------------------------------------ */

TEST(defaults)
{
	struct record_opts o;

	TRY(good(ARGS("-p", "1"), &o));
	CHECK_INT(o.npids, 1);
	CHECK_INT(o.pids[0], 1);
	record_opts__free(&o);
	CHECK(!o.pids, "record_opts__free leaves pids set");
	CHECK(!o.all && !o.cmd && !o.output && !o.exact && !o.quiet && !o.alloc_only &&
		      !o.probe_at_entry,
	      "a flag is set by default");
	CHECK_U64(o.duration_ns, 0);
	CHECK_U64(o.sample_bytes, DEFAULT_SAMPLE_BYTES);
	CHECK_U64(o.top, 10);
	CHECK_U64(o.max_stacks, DEFAULT_MAX_STACKS);
	CHECK_U64(o.max_live, DEFAULT_MAX_LIVE);
	return true;
}

TEST(every_option_long)
{
	struct record_opts o;

	TRY(good(ARGS("--pid", "7", "--duration", "2s", "--output", "x.pb.gz", "--sample-bytes",
		      "4096", "--top", "3", "--quiet", "--max-stacks", "100", "--max-live", "200",
		      "--probe-at-entry", "--verbose"),
		 &o));
	CHECK_INT(o.npids, 1);
	CHECK_INT(o.pids[0], 7);
	record_opts__free(&o);
	CHECK_U64(o.duration_ns, 2000000000ull);
	CHECK_STR(o.output, "x.pb.gz");
	CHECK_U64(o.sample_bytes, 4096);
	CHECK_U64(o.top, 3);
	CHECK(o.quiet, "--quiet");
	CHECK_U64(o.max_stacks, 100);
	CHECK_U64(o.max_live, 200);
	CHECK(o.probe_at_entry, "--probe-at-entry");
	CHECK(!o.alloc_only && !o.exact, "flags not given are set");
	/* -v is the one option kept outside record_opts: libbpf's output is global. */
	CHECK_INT(verbose, 1);

	TRY(good(ARGS("--all", "--alloc-only", "--exact"), &o));
	record_opts__free(&o);
	CHECK(o.all && o.alloc_only && o.exact, "--all --alloc-only --exact");
	CHECK_U64(o.sample_bytes, 1); /* --exact: every byte is a sample point */
	CHECK_INT(o.npids, 0);

	/* "--opt=value" as well as "--opt value". */
	TRY(good(ARGS("--pid=8", "--duration=1m", "--output=y", "--top=0", "--max-stacks=16"), &o));
	CHECK_INT(o.pids[0], 8);
	record_opts__free(&o);
	CHECK_U64(o.duration_ns, 60000000000ull);
	CHECK_STR(o.output, "y");
	CHECK_U64(o.top, 0);
	CHECK_U64(o.max_stacks, 16);
	return true;
}

TEST(every_option_short)
{
	struct record_opts o;

	TRY(good(ARGS("-p", "9", "-d", "500ms", "-o", "z", "-n", "1000000", "-q", "-v", "-v"), &o));
	CHECK_INT(o.pids[0], 9);
	record_opts__free(&o);
	CHECK_U64(o.duration_ns, 500000000ull);
	CHECK_STR(o.output, "z");
	CHECK_U64(o.top, 1000000);
	CHECK(o.quiet, "-q");
	CHECK_INT(verbose, 2);

	/* Short options cluster; a value may follow its letter directly. */
	TRY(good(ARGS("-qvva"), &o));
	record_opts__free(&o);
	CHECK(o.quiet && o.all, "-qvva");
	CHECK_INT(verbose, 2);
	TRY(good(ARGS("-p10", "-d3s", "-ofile"), &o));
	CHECK_INT(o.pids[0], 10);
	record_opts__free(&o);
	CHECK_U64(o.duration_ns, 3000000000ull);
	CHECK_STR(o.output, "file");
	return true;
}

TEST(limits_at_their_bounds)
{
	struct record_opts o;

	TRY(good(ARGS("-p", "1", "--max-stacks", "4194304", "--max-live", "67108864", "--top", "0"),
		 &o));
	record_opts__free(&o);
	CHECK_U64(o.max_stacks, 4194304);
	CHECK_U64(o.max_live, 67108864);
	TRY(good(ARGS("-p", "1", "--max-stacks", "16", "--max-live", "16"), &o));
	record_opts__free(&o);
	CHECK_U64(o.max_stacks, 16);
	CHECK_U64(o.max_live, 16);
	return true;
}

TEST(help)
{
	struct record_opts o;
	struct parse p;

	for (int i = 0; i < 2; i++) {
		TRY(parse(i ? ARGS("--help") : ARGS("-p", "1", "-h"), &o, &p));
		record_opts__free(&o);
		CHECK(p.ret == -1, "value %d after --help", p.ret);
		CHECK(!strncmp(p.out, "usage: allocprof record ", 24), "stdout \"%.60s\"", p.out);
		CHECK(strstr(p.out, "\n  2  bad command line\n"), "the exit statuses are not said");
		CHECK_STR(p.err, "");
	}
	return true;
}

/* ---- every option's bad values -------------------------------------------------------------- */

TEST(bad_values)
{
	TRY(refused(ARGS("-p", "1", "-o", ""), "empty output file name"));
	TRY(refused(ARGS("-p", "1", "-n", "x"),
		    "bad --top 'x': expected a number from 0 to 1000000"));
	TRY(refused(ARGS("-p", "1", "--top", "1000001"),
		    "bad --top '1000001': expected a number from 0 to 1000000"));
	TRY(refused(ARGS("-p", "1", "--top", "-1"),
		    "bad --top '-1': expected a number from 0 to 1000000"));
	TRY(refused(ARGS("-p", "1", "--max-stacks", "15"),
		    "bad --max-stacks '15': expected a number from 16 to 4194304"));
	TRY(refused(ARGS("-p", "1", "--max-stacks", "4194305"),
		    "bad --max-stacks '4194305': expected a number from 16 to 4194304"));
	TRY(refused(ARGS("-p", "1", "--max-stacks", "16k"),
		    "bad --max-stacks '16k': expected a number from 16 to 4194304"));
	TRY(refused(ARGS("-p", "1", "--max-live", "15"),
		    "bad --max-live '15': expected a number from 16 to 67108864"));
	TRY(refused(ARGS("-p", "1", "--max-live", "67108865"),
		    "bad --max-live '67108865': expected a number from 16 to 67108864"));
	TRY(refused(ARGS("-p", "1", "--max-live", "abc"),
		    "bad --max-live 'abc': expected a number from 16 to 67108864"));
	TRY(refused(ARGS("-p", "1", "--max-live", ""),
		    "bad --max-live '': expected a number from 16 to 67108864"));
	return true;
}

TEST(missing_value)
{
	TRY(refused(ARGS("-p"), "option '-p' needs a value"));
	TRY(refused(ARGS("-a", "-d"), "option '-d' needs a value"));
	TRY(refused(ARGS("-a", "-o"), "option '-o' needs a value"));
	TRY(refused(ARGS("-a", "-n"), "option '-n' needs a value"));
	TRY(refused(ARGS("-a", "--duration"), "option '--duration' needs a value"));
	TRY(refused(ARGS("-a", "--sample-bytes"), "option '--sample-bytes' needs a value"));
	TRY(refused(ARGS("-a", "--max-live"), "option '--max-live' needs a value"));
	return true;
}

TEST(unknown_option)
{
	TRY(refused(ARGS("-x", "-a"), "unknown option '-x'"));
	TRY(refused(ARGS("--frobnicate", "-a"), "unknown option '--frobnicate'"));
	/* Inside a cluster the letter is named, not the cluster. */
	TRY(refused(ARGS("-a", "-qx"), "unknown option '-x'"));
	return true;
}

/* The first bad value is the one line said; nothing after it is looked at. */
TEST(first_error_only)
{
	TRY(refused(ARGS("-p", "0", "-d", "5x", "--top", "x"), "pid '0' is out of range"));
	TRY(refused(ARGS("-d", "5x", "-p", "0"),
		    "bad duration '5x': expected e.g. 500ms, 30s, 2m, 1h"));
	return true;
}

/* ---- pid lists ---------------------------------------------------------------------------- */

TEST(pid_lists)
{
	TRY(pids_are(ARGS("-p", "1,2,3"), (pid_t[]){ 1, 2, 3 }, 3));
	TRY(pids_are(ARGS("-p", "2147483647"), (pid_t[]){ 2147483647 }, 1));
	/* The same pid twice would be probed twice: it is folded, order kept. */
	TRY(pids_are(ARGS("-p", "5,5,7,5"), (pid_t[]){ 5, 7 }, 2));
	/* -p again adds to the list, folded the same way. */
	TRY(pids_are(ARGS("-p", "5", "-p", "6,5", "--pid=7,6"), (pid_t[]){ 5, 6, 7 }, 3));
	return true;
}

/* Which processes: the filters and --no-follow. */
TEST(process_filters)
{
	struct record_opts o;

	TRY(good(ARGS("-a", "--comm", "nginx", "--comm=php-fpm", "--exclude-pid", "3,4",
		      "--exclude-pid=4,5"),
		 &o));
	CHECK_INT(o.ncomms, 2);
	CHECK_STR(o.comms[0], "nginx");
	CHECK_STR(o.comms[1], "php-fpm");
	CHECK_INT(o.nexclude, 3);
	CHECK_INT(o.exclude[2], 5);
	CHECK_INT(o.npids, 0);
	record_opts__free(&o);
	CHECK(!o.comms && !o.exclude, "record_opts__free leaves the filters set");
	TRY(good(ARGS("--no-follow", "--", "true"), &o));
	CHECK(o.no_follow, "--no-follow");
	record_opts__free(&o);
	TRY(refused(ARGS("-p", "1", "--no-follow"),
		    "--no-follow is for -- CMD: -p and -a never follow children"));
	TRY(refused(ARGS("-a", "--comm", "/usr/bin/x"),
		    "bad --comm '/usr/bin/x': expected a process name (not a path)"));
	TRY(refused(ARGS("-a", "--comm", ""), "bad --comm '': expected a process name (not a path)"));
	TRY(refused(ARGS("-a", "--exclude-pid", "x"), "pid 'x' is not a number"));
	return true;
}

TEST(operations)
{
	struct record_opts o;

	TRY(good(ARGS("--ops", "handle_request,_ZN3App6handleEv", "--ops=parse", "--", "true"),
		 &o));
	CHECK_INT(o.nops, 3);
	CHECK_STR(o.ops[0], "handle_request");
	CHECK_STR(o.ops[1], "_ZN3App6handleEv");
	CHECK_STR(o.ops[2], "parse");
	CHECK_U64(o.ops_given, 0);
	record_opts__free(&o);
	CHECK(!o.ops && !o.nops, "record_opts__free leaves the operations");
	TRY(good(ARGS("--ops", "1000", "--", "true"), &o));
	CHECK_U64(o.ops_given, 1000);
	CHECK_INT(o.nops, 0);
	record_opts__free(&o);
	TRY(refused(ARGS("--ops", "malloc", "--", "true"),
		    "--ops malloc: an allocator function; name the function whose calls are the "
		    "operations"));
	TRY(refused(ARGS("--ops", "f,,g", "--ops", "g,f", "--", "true"), "--ops g: given twice"));
	TRY(refused(ARGS("--ops", "0", "--", "true"),
		    "bad --ops '0': expected function names or a number of operations from 1"));
	TRY(refused(ARGS("--ops", "12x", "--", "true"),
		    "bad --ops '12x': expected function names or a number of operations from 1"));
	TRY(refused(ARGS("--ops", ",", "--", "true"),
		    "bad --ops ',': expected FUNC[,FUNC...] or a number"));
	TRY(refused(ARGS("--ops", "App::handle(int)", "--", "true"),
		    "bad --ops 'App::handle(int)': expected a function name (C++: ns::Class::fn "
		    "without parameters, or the symbol)"));
	TRY(refused(ARGS("--ops", "3", "--ops", "4", "--", "true"),
		    "--ops 4: a number of operations was given already"));
	return true;
}

TEST(bad_pid_lists)
{
	TRY(refused(ARGS("-p", "1,,2"), "bad pid list '1,,2': expected PID[,PID...]"));
	TRY(refused(ARGS("-p", ",1"), "bad pid list ',1': expected PID[,PID...]"));
	TRY(refused(ARGS("-p", "1,"), "bad pid list '1,': expected PID[,PID...]"));
	TRY(refused(ARGS("-p", ","), "bad pid list ',': expected PID[,PID...]"));
	TRY(refused(ARGS("-p", ""), "bad pid list '': expected PID[,PID...]"));
	TRY(refused(ARGS("-p", "0"), "pid '0' is out of range"));
	TRY(refused(ARGS("-p", "1,0"), "pid '0' is out of range"));
	TRY(refused(ARGS("-p", "2147483648"), "pid '2147483648' is out of range"));
	TRY(refused(ARGS("-p", "99999999999999999999999"),
		    "pid '99999999999999999999999' is out of range"));
	TRY(refused(ARGS("-p", "12ab"), "pid '12ab' is not a number"));
	TRY(refused(ARGS("-p", "-1"), "pid '-1' is not a number"));
	TRY(refused(ARGS("-p", "1, 2"), "pid ' 2' is not a number"));
	TRY(refused(ARGS("-p", "0x10"), "pid '0x10' is not a number"));
	/* A good list before a bad one: still refused, and nothing leaks (run under ASan). */
	TRY(refused(ARGS("-p", "1,2", "-p", "3,x"), "pid 'x' is not a number"));
	return true;
}

/* ---- durations and sizes ------------------------------------------------------------------- */

TEST(durations)
{
	TRY(duration_is("500ms", 500000000ull));
	TRY(duration_is("30s", 30000000000ull));
	TRY(duration_is("2m", 120000000000ull));
	TRY(duration_is("2min", 120000000000ull));
	TRY(duration_is("1h", 3600000000000ull));
	TRY(duration_is("5", 5000000000ull)); /* a bare number is seconds */
	TRY(duration_is("1.5s", 1500000000ull));
	TRY(duration_is("0.25", 250000000ull));
	TRY(duration_is("100us", 100000ull));
	TRY(duration_is("1ns", 1));
	return true;
}

TEST(bad_durations)
{
	static const char *const not_durations[] = { "5x", "-1s", "+1s", "",	" 1s", "1 s",
						     "s",  "1S",  "1hh", "abc", "nan" };
	static const char *const out_of_range[] = { "0", "0s", "0.5ns", "1e30h", "inf" };
	char line[256];

	for (size_t i = 0; i < ARRAY_SIZE(not_durations); i++) {
		snprintf(line, sizeof(line), "bad duration '%s': expected e.g. 500ms, 30s, 2m, 1h",
			 not_durations[i]);
		TRY(refused(ARGS("-p", "1", "-d", (char *)not_durations[i]), line));
	}
	for (size_t i = 0; i < ARRAY_SIZE(out_of_range); i++) {
		snprintf(line, sizeof(line), "duration '%s' is out of range", out_of_range[i]);
		TRY(refused(ARGS("-p", "1", "-d", (char *)out_of_range[i]), line));
	}
	return true;
}

TEST(sample_bytes)
{
	TRY(sample_bytes_is("1", 1));
	TRY(sample_bytes_is("4096", 4096));
	TRY(sample_bytes_is("512k", 512 * 1024));
	TRY(sample_bytes_is("512K", 512 * 1024));
	TRY(sample_bytes_is("64kb", 64 * 1024));
	TRY(sample_bytes_is("64KiB", 64 * 1024));
	TRY(sample_bytes_is("1.5k", 1536));
	TRY(sample_bytes_is("1M", 1 << 20));
	TRY(sample_bytes_is("2mb", 2 << 20));
	TRY(sample_bytes_is("3MiB", 3 << 20));
	TRY(sample_bytes_is("100b", 100));
	TRY(sample_bytes_is("1G", 1ull << 30)); /* the largest */
	TRY(sample_bytes_is("1gib", 1ull << 30));
	TRY(sample_bytes_is("1073741824", 1ull << 30));
	return true;
}

TEST(bad_sample_bytes)
{
	static const char *const bad[] = { "0",	  "abc", "2G",	"1.5", "1073741825", "1.1G",
					   "-1",  "",	 "1x",	"1 k", "k",	     "99e99",
					   "1kk", "0k",	 "1TB", "0.5b" };
	char line[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(
			line, sizeof(line),
			"bad --sample-bytes '%s': expected a size from 1 to 1GiB (e.g. 4096, 512k, "
			"1M)",
			bad[i]);
		TRY(refused(ARGS("-p", "1", "--sample-bytes", (char *)bad[i]), line));
	}
	return true;
}

/* ---- -- CMD, targets and conflicts ---------------------------------------------------------- */

TEST(command)
{
	char **argv = ARGS("-q", "--", "/bin/prog", "a", "-p", "--exact");
	struct record_opts o;

	TRY(good(argv, &o));
	record_opts__free(&o);
	CHECK(o.cmd == &argv[3], "cmd does not point into argv after --");
	CHECK_STR(o.cmd[0], "/bin/prog");
	/* Everything after -- is the command's, options included. */
	CHECK_STR(o.cmd[1], "a");
	CHECK_STR(o.cmd[2], "-p");
	CHECK_STR(o.cmd[3], "--exact");
	CHECK(!o.cmd[4], "cmd is not NULL-terminated");
	CHECK(o.quiet && !o.exact && !o.npids, "options after -- were parsed as allocprof's");

	/* o.cmd points into argv: the arrays must outlive the checks (not a literal in TRY). */
	argv = ARGS("--", "prog");
	TRY(good(argv, &o));
	record_opts__free(&o);
	CHECK_STR(o.cmd[0], "prog");
	CHECK(!o.cmd[1], "cmd is not NULL-terminated");
	/* A second -- is the command's first argument. */
	argv = ARGS("--", "--");
	TRY(good(argv, &o));
	record_opts__free(&o);
	CHECK_STR(o.cmd[0], "--");
	return true;
}

TEST(command_without_dashes)
{
	TRY(refused(ARGS("/bin/prog"), "unexpected argument '/bin/prog' (put a command after --)"));
	TRY(refused(ARGS("-q", "prog", "-p", "1"),
		    "unexpected argument 'prog' (put a command after --)"));
	TRY(refused(ARGS("-p", "1", "extra"),
		    "unexpected argument 'extra' (put a command after --)"));
	return true;
}

TEST(targets)
{
	const char *no = "no target: give -p PID, -a, or -- CMD";
	const char *two = "give one target: -p PID, -a, or -- CMD";

	TRY(refused(ARGS("-q"), no));
	TRY(refused((char *[]){ "record", NULL }, no));
	TRY(refused(ARGS("--"), no)); /* -- without a command */
	TRY(refused(ARGS("-q", "-d", "1s", "--"), no));
	TRY(refused(ARGS("-p", "1", "-a"), two));
	TRY(refused(ARGS("-a", "-p", "1"), two));
	TRY(refused(ARGS("-p", "1", "--", "prog"), two));
	TRY(refused(ARGS("-a", "--", "prog"), two));
	TRY(refused(ARGS("-a", "-p", "1", "--", "prog"), two));
	return true;
}

TEST(conflicts)
{
	struct record_opts o;

	TRY(refused(ARGS("--exact", "--sample-bytes", "1k", "-p", "1"),
		    "--exact and --sample-bytes contradict each other"));
	TRY(refused(ARGS("--sample-bytes", "1k", "--exact", "-p", "1"),
		    "--exact and --sample-bytes contradict each other"));
	/* The default sample size is not a conflict: only one given is. */
	TRY(good(ARGS("--exact", "-p", "1"), &o));
	record_opts__free(&o);
	CHECK_U64(o.sample_bytes, 1);
	TRY(refused(ARGS("--alloc-only", "--max-live", "100", "-p", "1"),
		    "--max-live has no effect with --alloc-only"));
	TRY(refused(ARGS("--max-live", "100", "--alloc-only", "-p", "1"),
		    "--max-live has no effect with --alloc-only"));
	TRY(good(ARGS("--alloc-only", "--exact", "-p", "1"), &o));
	record_opts__free(&o);
	CHECK(o.alloc_only && o.exact, "--alloc-only --exact");
	/* A conflict is said before a missing target. */
	TRY(refused(ARGS("--exact", "--sample-bytes", "1k"),
		    "--exact and --sample-bytes contradict each other"));
	return true;
}

/* Each parse starts from the defaults, whatever the one before it set or left half done. */
TEST(parse_again)
{
	struct record_opts o;

	TRY(good(ARGS("-p", "3", "-q", "--exact", "-o", "a"), &o));
	record_opts__free(&o);
	TRY(refused(ARGS("-a", "-qx"), "unknown option '-x'"));
	TRY(good(ARGS("-a"), &o));
	record_opts__free(&o);
	CHECK(!o.quiet && !o.exact && !o.output && !o.npids, "state left from an earlier parse");
	CHECK_U64(o.sample_bytes, DEFAULT_SAMPLE_BYTES);
	return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct unit_test tests[] = {
	T(defaults),
	T(every_option_long),
	T(every_option_short),
	T(limits_at_their_bounds),
	T(help),
	T(bad_values),
	T(missing_value),
	T(unknown_option),
	T(first_error_only),
	T(pid_lists),
	T(process_filters),
	T(operations),
	T(bad_pid_lists),
	T(durations),
	T(bad_durations),
	T(sample_bytes),
	T(bad_sample_bytes),
	T(command),
	T(command_without_dashes),
	T(targets),
	T(conflicts),
	T(parse_again),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
