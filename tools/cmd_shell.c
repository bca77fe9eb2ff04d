/* quorafs shell: an SQL shell over the dqlite wire protocol, for quorafs
 * and dqlite clusters alike (wire-protocol.md §8.3 describes the dqlite
 * shell it follows).
 *
 * It finds the leader among the -s addresses (§8.1), opens DB on it and
 * runs statements one at a time.  With SQL on the command line it runs
 * every statement in it and stops at the first error (exit 1, the
 * server's message on stderr); otherwise it reads statements from stdin,
 * with line editing and history when stdin is a terminal.
 *
 * Statements.  The dqlite shell splits its argument at every ';'.  Here a
 * ';' ends a statement only where SQLite says the statement is complete
 * (sqlite3_complete()), so semicolons inside quotes, comments and trigger
 * bodies do not split; for everything the dqlite shell accepts the split
 * is the same.  A statement whose first word is SELECT, WITH, VALUES,
 * PRAGMA or EXPLAIN runs with QUERY_SQL and its rows stream to stdout;
 * others run with EXEC_SQL and print nothing.  A query the server refuses
 * because it has no result columns (FAILURE 1 "not an error": nothing was
 * run, §4.9) is run again with EXEC_SQL.  Unlike the dqlite shell, no
 * BEGIN/COMMIT is wrapped around each statement, so BEGIN ... COMMIT typed
 * by the user works.
 *
 * Output.  tabular (default) prints a row as its values joined by '|',
 * formatted as the dqlite shell does (Go's %v of what the go-dqlite driver
 * returns): NULL is <nil>, a blob [1 2 3], a boolean true/false, a float
 * in Go's shortest form (1e+06), a timestamp as Go prints a time.Time
 * ("2006-01-02 15:04:05 +0000 UTC": UNIXTIME in the local zone, ISO8601
 * in UTC or at its own offset).  json prints each result as one array
 * of objects keyed by column name, written row by row: numbers, strings,
 * true/false, null; a blob as a base64 string; a UNIXTIME timestamp as an
 * RFC 3339 UTC string; an ISO8601 one as its text.
 *
 * Single-threaded; the client library does all network I/O. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#ifdef QF_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#include "../net/net.h"
#include "tools.h"

#define HISTORY_FILE ".quorafs_history"
#define HISTORY_MAX 1000

/* Codes the go-dqlite driver treats as a bad connection (§7.3): the
 * statement did not run; find the leader again and retry once. */
#define NOT_LEADER 10250
#define NO_DATABASE 12

enum { FORMAT_TABULAR, FORMAT_JSON };

struct shell {
	struct net_client *client;
	char **servers;
	size_t n_servers;
	const char *db;
	int format;
	bool connected;
	bool in_tx; /* the user began a transaction on this connection */
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs shell -s ADDR[,ADDR...] [-f tabular|json] [-t SECONDS]\n"
"                     DB [SQL]\n\n"
"An SQL shell over the dqlite wire protocol: finds the leader among the\n"
"servers (as 'dqlite -s' does), opens database DB on it and runs SQL.\n"
"With SQL given, runs each of its statements (separated by ';') and exits:\n"
"0, or 1 at the first error, with the server's message on stderr.\n"
"Without SQL, reads statements from stdin (line editing and history on a\n"
"terminal).\n\n"
"  -s, --servers ADDR,...  HOST:PORT of cluster members (repeatable)\n"
"  -f, --format FORMAT     tabular (default: values joined by '|', as the\n"
"                          dqlite shell prints them) or json (an array of\n"
"                          objects per result)\n"
"  -t, --timeout SECONDS   give up finding a leader, or waiting for an\n"
"                          answer, after this long (default 30)\n"
"  -h, --help              this text\n\n"
"Commands: .leader (the leader's address), .cluster (id|address|role),\n"
".help, .quit.\n");
}

/* ---- server lists (shared with cmd_cluster.c) ---- */

void qf_servers_free(char **servers, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(servers[i]);
	free(servers);
}

int qf_servers_add(char ***servers, size_t *n, const char *list)
{
	const char *p = list, *end;
	char **a;

	while (*p != '\0') {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		if (end > p) {
			a = realloc(*servers, (*n + 1) * sizeof *a);
			if (a == NULL)
				return -ENOMEM;
			*servers = a;
			a[*n] = strndup(p, (size_t)(end - p));
			if (a[*n] == NULL)
				return -ENOMEM;
			(*n)++;
		}
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

int qf_parse_seconds(const char *s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400)
		return -1;
	*ms = (unsigned)(v * 1000);
	return *ms > 0 ? 0 : -1;
}

/* ---- value formatting ---- */

/* Go's strconv.FormatFloat(v, 'g', -1, 64), which %v uses: the shortest
 * digits that read back as @v; exponent form when the exponent is < -4 or
 * >= 6 (the shortest-precision rule). */
static void format_go_float(double v, char *out, size_t cap)
{
	char e[40];
	int prec, exp, digits;

	if (isnan(v)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	snprintf(e, sizeof e, "%.*e", prec - 1, v);
	exp = atoi(strchr(e, 'e') + 1);
	digits = prec;
	if (exp < -4 || exp >= 6)
		snprintf(out, cap, "%s", e);
	else
		snprintf(out, cap, "%.*f",
			 digits - (exp + 1) > 0 ? digits - (exp + 1) : 0, v);
}

/* An ISO8601 value as the go-dqlite driver parses it. */
struct iso_time {
	int y, mo, d, h, mi, s;
	long ns;
	int off; /* seconds east of UTC */
};

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Parse the ISO8601 text the go-dqlite driver accepts (a trailing Z
 * dropped; date, then [ T]HH:MM, :SS, .fraction, ±HH:MM offset): 0, or -1
 * if it matches none of its layouts. */
static int parse_iso8601(const char *s, size_t len, struct iso_time *t)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	char buf[64];
	const char *p;
	int n, oh, om, digits = 0;

	if (len > 0 && s[len - 1] == 'Z')
		len--;
	if (len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(t, 0, sizeof *t);
	if (sscanf(buf, "%4d-%2d-%2d%n", &t->y, &t->mo, &t->d, &n) != 3 ||
	    n != 10)
		return -1;
	p = buf + n;
	if (*p == ' ' || *p == 'T') {
		if (sscanf(p + 1, "%2d:%2d%n", &t->h, &t->mi, &n) != 2 ||
		    n != 5)
			return -1;
		p += 1 + n;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &t->s, &n) != 1 || n != 2)
				return -1;
			p += 3;
			if (*p == '.') {
				for (p++; isdigit((unsigned char)*p); p++)
					if (digits++ < 9)
						t->ns = t->ns * 10 + (*p - '0');
				if (digits == 0)
					return -1;
				for (; digits < 9; digits++)
					t->ns *= 10;
			}
			if (*p == '+' || *p == '-') {
				if (sscanf(p + 1, "%2d:%2d%n", &oh, &om,
					   &n) != 2 ||
				    n != 5 || oh > 23 || om > 59)
					return -1;
				t->off = (oh * 60 + om) * 60;
				if (*p == '-')
					t->off = -t->off;
				p += 1 + n;
			}
		}
	}
	if (*p != '\0' || t->mo < 1 || t->mo > 12 || t->d < 1 ||
	    t->d > days[t->mo - 1] + (t->mo == 2 && leap(t->y)) || t->h > 23 ||
	    t->mi > 59 || t->s > 59)
		return -1;
	return 0;
}

/* Fraction of a second as Go prints it: ".5", none for 0. */
static void go_fraction(long ns, char *out, size_t cap)
{
	int i;

	out[0] = '\0';
	if (ns <= 0)
		return;
	snprintf(out, cap, ".%09ld", ns);
	for (i = (int)strlen(out) - 1; out[i] == '0'; i--)
		out[i] = '\0';
}

/* Go's time.Time.String() of time.Unix(@t, 0), in the local zone:
 * "2006-01-02 15:04:05 -0700 MST". */
static void print_go_unix(FILE *out, time_t t)
{
	char text[64];
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %z %Z", &tm);
	fputs(text, out);
}

/* Go's String() of the parsed ISO8601 time: in UTC without an offset (or
 * a zero one), else at its own offset in a nameless zone, which Go prints
 * as the offset twice ("+0200 +0200"). */
static void print_go_iso(FILE *out, const struct iso_time *t)
{
	char frac[24];
	int off = t->off < 0 ? -t->off : t->off;

	go_fraction(t->ns, frac, sizeof frac);
	fprintf(out, "%04d-%02d-%02d %02d:%02d:%02d%s ", t->y, t->mo, t->d,
		t->h, t->mi, t->s, frac);
	if (t->off == 0)
		fputs("+0000 UTC", out);
	else
		fprintf(out, "%c%02d%02d %c%02d%02d", t->off < 0 ? '-' : '+',
			off / 3600, off / 60 % 60, t->off < 0 ? '-' : '+',
			off / 3600, off / 60 % 60);
}

static void print_tabular_value(FILE *out, const struct net_sql_value *v)
{
	char num[64];
	struct iso_time t;
	size_t i;

	switch (v->type) {
	case NET_SQL_INTEGER:
		fprintf(out, "%lld", (long long)v->integer);
		break;
	case NET_SQL_FLOAT:
		format_go_float(v->real, num, sizeof num);
		fputs(num, out);
		break;
	case NET_SQL_TEXT:
		fwrite(v->text.p, 1, v->text.len, out);
		break;
	case NET_SQL_BLOB:
		fputc('[', out);
		for (i = 0; i < v->blob.len; i++)
			fprintf(out, i > 0 ? " %u" : "%u",
				((const unsigned char *)v->blob.p)[i]);
		fputc(']', out);
		break;
	case NET_SQL_BOOLEAN:
		fputs(v->boolean ? "true" : "false", out);
		break;
	case NET_SQL_UNIXTIME:
		print_go_unix(out, (time_t)v->integer);
		break;
	case NET_SQL_ISO8601:
		if (v->text.len == 0)
			fputs("<nil>", out); /* how 1.11 sends a NULL (§6.2) */
		else if (parse_iso8601(v->text.p, v->text.len, &t) == 0)
			print_go_iso(out, &t);
		else
			fwrite(v->text.p, 1, v->text.len, out);
		break;
	default:
		fputs("<nil>", out);
		break;
	}
}

static void print_json_string(FILE *out, const char *p, size_t len)
{
	size_t i;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", out);
		else if (ch == '\r')
			fputs("\\r", out);
		else if (ch == '\t')
			fputs("\\t", out);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void print_base64(FILE *out, const unsigned char *p, size_t len)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	uint32_t w;

	fputc('"', out);
	for (i = 0; i + 2 < len; i += 3) {
		w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fputc(digits[w >> 18], out);
		fputc(digits[w >> 12 & 63], out);
		fputc(digits[w >> 6 & 63], out);
		fputc(digits[w & 63], out);
	}
	if (len - i == 1) {
		w = (uint32_t)p[i] << 16;
		fprintf(out, "%c%c==", digits[w >> 18], digits[w >> 12 & 63]);
	} else if (len - i == 2) {
		w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fprintf(out, "%c%c%c=", digits[w >> 18], digits[w >> 12 & 63],
			digits[w >> 6 & 63]);
	}
	fputc('"', out);
}

static void print_json_value(FILE *out, const struct net_sql_value *v)
{
	char num[64];
	struct tm tm;
	time_t t;

	switch (v->type) {
	case NET_SQL_INTEGER:
		fprintf(out, "%lld", (long long)v->integer);
		break;
	case NET_SQL_FLOAT:
		if (!isfinite(v->real)) {
			fputs("null", out); /* JSON has no infinities */
			break;
		}
		format_go_float(v->real, num, sizeof num);
		fputs(num, out);
		if (strpbrk(num, ".e") == NULL)
			fputs(".0", out); /* stays a float when read back */
		break;
	case NET_SQL_TEXT:
		print_json_string(out, v->text.p, v->text.len);
		break;
	case NET_SQL_BLOB:
		print_base64(out, v->blob.p, v->blob.len);
		break;
	case NET_SQL_BOOLEAN:
		fputs(v->boolean ? "true" : "false", out);
		break;
	case NET_SQL_UNIXTIME:
		t = (time_t)v->integer;
		gmtime_r(&t, &tm);
		strftime(num, sizeof num, "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
		fputs(num, out);
		break;
	case NET_SQL_ISO8601:
		if (v->text.len == 0)
			fputs("null", out);
		else
			print_json_string(out, v->text.p, v->text.len);
		break;
	default:
		fputs("null", out);
		break;
	}
}

/* ---- running statements ---- */

static void report(struct shell *sh, const char *what)
{
	fflush(stdout);
	fprintf(stderr, "Error: %s: %s\n", what, net_client_errmsg(sh->client));
}

/* Find the leader and open the database on it. */
static int connect_shell(struct shell *sh)
{
	int rv;

	sh->connected = false;
	rv = net_client_connect_leader(sh->client,
				       (const char *const *)sh->servers,
				       sh->n_servers);
	if (rv == 0)
		rv = net_client_open(sh->client, sh->db);
	if (rv != 0) {
		report(sh, "connect");
		net_client_disconnect(sh->client);
		return rv;
	}
	sh->connected = true;
	return 0;
}

/* Stream a result set to stdout. */
static int print_rows(struct shell *sh, struct net_client_rows *rows)
{
	unsigned i;
	long n = 0;
	int rv;

	if (sh->format == FORMAT_JSON)
		fputc('[', stdout);
	while ((rv = net_client_rows_next(rows)) == 1) {
		if (sh->format == FORMAT_JSON) {
			fputs(n > 0 ? ",\n{" : "{", stdout);
			for (i = 0; i < rows->n_cols; i++) {
				if (i > 0)
					fputc(',', stdout);
				print_json_string(stdout, rows->names[i],
						  strlen(rows->names[i]));
				fputc(':', stdout);
				print_json_value(stdout, &rows->row[i]);
			}
			fputc('}', stdout);
		} else {
			for (i = 0; i < rows->n_cols; i++) {
				if (i > 0)
					fputc('|', stdout);
				print_tabular_value(stdout, &rows->row[i]);
			}
			fputc('\n', stdout);
		}
		n++;
	}
	if (sh->format == FORMAT_JSON)
		fputs("]\n", stdout);
	return rv;
}

static bool is_space_or_comment(const char **p)
{
	const char *s = *p;

	if (isspace((unsigned char)*s)) {
		*p = s + 1;
		return true;
	}
	if (s[0] == '-' && s[1] == '-') {
		s = strchr(s, '\n');
		*p = s != NULL ? s + 1 : *p + strlen(*p);
		return true;
	}
	if (s[0] == '/' && s[1] == '*') {
		s = strstr(s + 2, "*/");
		*p = s != NULL ? s + 2 : *p + strlen(*p);
		return true;
	}
	return false;
}

static const char *skip_blank(const char *p)
{
	while (*p != '\0' && is_space_or_comment(&p))
		;
	return p;
}

/* Is the @k-th word of @sql (from 0) one of @words? */
static bool word_is(const char *sql, int k, const char *const *words,
		    size_t n_words)
{
	const char *p = skip_blank(sql);
	size_t i, n;

	for (;;) {
		for (n = 0; isalpha((unsigned char)p[n]); n++)
			;
		if (k-- == 0)
			break;
		p = skip_blank(p + n);
	}
	for (i = 0; i < n_words; i++)
		if (n == strlen(words[i]) && strncasecmp(p, words[i], n) == 0)
			return true;
	return false;
}

#define WORD_IS(sql, k, ...)                                                \
	word_is((sql), (k), (const char *const[]){__VA_ARGS__},             \
		sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* Does the statement yield rows?  By its first keyword. */
static bool is_query(const char *sql)
{
	return WORD_IS(sql, 0, "SELECT", "WITH", "VALUES", "PRAGMA",
		       "EXPLAIN");
}

/* Follow the transaction state of a statement that succeeded. */
static void track_transaction(struct shell *sh, const char *sql)
{
	if (WORD_IS(sql, 0, "BEGIN", "SAVEPOINT"))
		sh->in_tx = true;
	else if (WORD_IS(sql, 0, "COMMIT", "END"))
		sh->in_tx = false;
	else if (WORD_IS(sql, 0, "ROLLBACK") && !WORD_IS(sql, 1, "TO"))
		sh->in_tx = false;
}

/* One attempt at @sql; 0 or the client's error. */
static int run_once(struct shell *sh, const char *sql, const char **what)
{
	struct net_client_rows rows;
	int rv, rv2;

	if (is_query(sql)) {
		*what = "query";
		rv = net_client_query_sql(sh->client, sql, NULL, 0, &rows);
		if (rv == 0) {
			rv = print_rows(sh, &rows);
			rv2 = net_client_rows_close(&rows);
			return rv != 0 ? rv : rv2;
		}
		/* No result columns: refused without running (§4.9). */
		if (rv != NET_EFAILURE ||
		    net_client_failure_code(sh->client) != 1 ||
		    strcmp(net_client_errmsg(sh->client), "not an error") != 0)
			return rv;
	}
	*what = "exec";
	return net_client_exec_sql(sh->client, sql, NULL, 0, NULL);
}

/* Is this error one after which the connection must be found again? */
static bool connection_lost(struct shell *sh, int rv)
{
	uint64_t code;

	if (rv != NET_EFAILURE)
		return net_client_address(sh->client) == NULL;
	code = net_client_failure_code(sh->client);
	/* 10250 not leader, 10506 leadership lost, 12 no database (the
	 * handle was dropped by a leadership change), 0 (§7.3). */
	return code == NOT_LEADER || code == 10506 || code == NO_DATABASE ||
	       code == 0;
}

/* Run one statement; 0 or -1 (reported). */
static int run_sql(struct shell *sh, const char *sql)
{
	const char *what = "exec";
	uint64_t code;
	int rv;

	if (!sh->connected && connect_shell(sh) != 0)
		return -1;
	rv = run_once(sh, sql, &what);
	if (rv != 0 && connection_lost(sh, rv)) {
		code = net_client_failure_code(sh->client);
		sh->connected = false;
		net_client_disconnect(sh->client);
		/* Not run at all: safe to retry once on the new leader, but
		 * not inside a transaction, which died with the connection
		 * (go's database/sql does not retry in a Tx either). */
		if (rv == NET_EFAILURE && !sh->in_tx &&
		    (code == NOT_LEADER || code == NO_DATABASE)) {
			if (connect_shell(sh) != 0)
				return -1;
			rv = run_once(sh, sql, &what);
		}
	}
	if (rv != 0) {
		report(sh, what);
		if (connection_lost(sh, rv)) {
			sh->connected = false;
			net_client_disconnect(sh->client);
			if (sh->in_tx)
				fprintf(stderr, "Error: the connection was "
					"lost: the open transaction is gone\n");
			sh->in_tx = false;
		}
		return -1;
	}
	track_transaction(sh, sql);
	return 0;
}

static int dot_command(struct shell *sh, const char *line)
{
	struct net_member *m = NULL;
	const char *leader;
	char cmd[32];
	uint64_t id;
	size_t n, i;
	int rv;

	if (sscanf(line, " %31s", cmd) != 1)
		return 0;
	if (strcmp(cmd, ".help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, ".leader") != 0 && strcmp(cmd, ".cluster") != 0) {
		fprintf(stderr, "Error: unknown command %s (try .help)\n", cmd);
		return -1;
	}
	if (!sh->connected && connect_shell(sh) != 0)
		return -1;
	if (strcmp(cmd, ".leader") == 0) {
		rv = net_client_leader(sh->client, &id, &leader);
		if (rv == 0 && leader[0] != '\0')
			printf("%s\n", leader);
	} else {
		rv = net_client_cluster(sh->client, &m, &n);
		for (i = 0; rv == 0 && i < n; i++)
			printf("%llx|%s|%s\n", (unsigned long long)m[i].id,
			       m[i].address, net_role_name(m[i].role));
		net_members_free(m, rv == 0 ? n : 0);
	}
	if (rv != 0) {
		report(sh, cmd + 1);
		if (net_client_address(sh->client) == NULL)
			sh->connected = false;
		return -1;
	}
	return 0;
}

/* Run a piece of input: a dot command or one statement. */
static int run_piece(struct shell *sh, char *piece)
{
	const char *p = skip_blank(piece);

	if (*p == '\0')
		return 0;
	if (*p == '.')
		return dot_command(sh, p);
	return run_sql(sh, piece);
}

/* Run every complete statement at the start of @buf (each ends with a
 * ';' where sqlite3_complete() agrees).  Returns how many bytes were
 * used; *@errors counts failures.  @stop: stop at the first error. */
static size_t run_statements(struct shell *sh, char *buf, bool stop,
			     int *errors)
{
	size_t start = 0, i, len = strlen(buf);
	char save;
	int complete;

	for (i = 0; i < len; i++) {
		if (buf[i] != ';')
			continue;
		save = buf[i + 1];
		buf[i + 1] = '\0';
		complete = sqlite3_complete(buf + start);
		buf[i + 1] = save;
		if (!complete)
			continue;
		buf[i] = '\0';
		if (run_piece(sh, buf + start) != 0) {
			(*errors)++;
			if (stop)
				return len;
		}
		start = i + 1;
	}
	return start;
}

/* The SQL argument: all its statements, the last ';' optional. */
static int run_argument(struct shell *sh, const char *sql)
{
	size_t len = strlen(sql), used;
	char *buf = malloc(len + 2);
	int errors = 0;

	if (buf == NULL) {
		fprintf(stderr, "quorafs shell: out of memory\n");
		return 1;
	}
	memcpy(buf, sql, len);
	memcpy(buf + len, ";", 2); /* ends the last statement if it is open */
	used = run_statements(sh, buf, true, &errors);
	/* Still incomplete (an unterminated string...): the server judges. */
	if (errors == 0 && *skip_blank(buf + used) != '\0' &&
	    run_piece(sh, buf + used) != 0)
		errors++;
	free(buf);
	return errors == 0 ? 0 : 1;
}

/* ---- reading input ---- */

struct reader {
	bool tty;
	char *line; /* getline's buffer */
	size_t cap;
	char *history_path;
};

/* The next line without its newline, or NULL at end of input.  The
 * pointer lives until the next call. */
static char *read_line(struct reader *r, bool continued)
{
	ssize_t n;

#ifdef QF_HAVE_LIBEDIT
	if (r->tty) {
		free(r->line);
		r->line = readline(continued ? "   ...> " : "quorafs> ");
		if (r->line != NULL && r->line[strspn(r->line, " \t")] != '\0')
			add_history(r->line);
		return r->line;
	}
#else
	if (r->tty) {
		fputs(continued ? "   ...> " : "quorafs> ", stdout);
		fflush(stdout);
	}
#endif
	n = getline(&r->line, &r->cap, stdin);
	if (n < 0)
		return NULL;
	if (n > 0 && r->line[n - 1] == '\n')
		r->line[n - 1] = '\0';
	return r->line;
}

static void reader_init(struct reader *r)
{
	const char *home = getenv("HOME");

	memset(r, 0, sizeof *r);
	r->tty = isatty(STDIN_FILENO) != 0;
#ifdef QF_HAVE_LIBEDIT
	if (r->tty && home != NULL && home[0] != '\0') {
		using_history();
		stifle_history(HISTORY_MAX);
		if (asprintf(&r->history_path, "%s/%s", home, HISTORY_FILE) < 0)
			r->history_path = NULL;
		else
			(void)read_history(r->history_path); /* may not exist */
	}
#else
	(void)home;
#endif
}

static void reader_close(struct reader *r)
{
#ifdef QF_HAVE_LIBEDIT
	if (r->history_path != NULL)
		(void)write_history(r->history_path); /* best effort */
#endif
	free(r->history_path);
	free(r->line);
}

/* Append @line and a newline to the pending input @buf. */
static int append(char **buf, size_t *len, size_t *cap, const char *line)
{
	size_t n = strlen(line);
	char *b;

	if (*len + n + 2 > *cap) {
		*cap = (*len + n + 2) * 2;
		b = realloc(*buf, *cap);
		if (b == NULL)
			return -1;
		*buf = b;
	}
	memcpy(*buf + *len, line, n);
	*len += n;
	(*buf)[(*len)++] = '\n';
	(*buf)[*len] = '\0';
	return 0;
}

/* Statements from stdin until its end.  Exit code: 1 if a statement
 * failed and stdin is not a terminal (scripts), else 0. */
static int run_input(struct shell *sh)
{
	struct reader r;
	char *buf = NULL, *line;
	size_t len = 0, cap = 0, used;
	int errors = 0;

	reader_init(&r);
	while ((line = read_line(&r, len > 0)) != NULL) {
		if (len == 0 && *skip_blank(line) == '.') {
			if (strncmp(skip_blank(line), ".quit", 5) == 0 ||
			    strncmp(skip_blank(line), ".exit", 5) == 0)
				break;
			if (dot_command(sh, line) != 0)
				errors++;
			fflush(stdout);
			continue;
		}
		if (append(&buf, &len, &cap, line) != 0) {
			fprintf(stderr, "quorafs shell: out of memory\n");
			errors++;
			break;
		}
		used = run_statements(sh, buf, false, &errors);
		memmove(buf, buf + used, len - used + 1);
		len -= used;
		if (*skip_blank(buf) == '\0')
			len = 0; /* only blanks left */
		fflush(stdout);
	}
	if (len > 0 && *skip_blank(buf) != '\0') {
		/* Input ended inside a statement: run what there is. */
		if (run_piece(sh, buf) != 0)
			errors++;
	}
	fflush(stdout);
	if (r.tty)
		fputc('\n', stdout);
	reader_close(&r);
	free(buf);
	return errors > 0 && !r.tty ? 1 : 0;
}

/* ---- main ---- */

int qf_cmd_shell(int argc, char **argv)
{
	static const struct option longs[] = {
		{"servers", required_argument, NULL, 's'},
		{"format", required_argument, NULL, 'f'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct net_client_config cfg = {0};
	struct shell sh;
	unsigned timeout_ms = 30000;
	int c, rv;

	memset(&sh, 0, sizeof sh);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+s:f:t:h", longs, NULL)) != -1) {
		switch (c) {
		case 's':
			if (qf_servers_add(&sh.servers, &sh.n_servers,
					   optarg) != 0) {
				fprintf(stderr,
					"quorafs shell: out of memory\n");
				return 1;
			}
			break;
		case 'f':
			if (strcmp(optarg, "tabular") == 0) {
				sh.format = FORMAT_TABULAR;
			} else if (strcmp(optarg, "json") == 0) {
				sh.format = FORMAT_JSON;
			} else {
				fprintf(stderr, "quorafs shell: unknown format "
					"'%s' (tabular or json)\n", optarg);
				goto usage_error;
			}
			break;
		case 't':
			if (qf_parse_seconds(optarg, &timeout_ms) != 0) {
				fprintf(stderr,
					"quorafs shell: --timeout needs a "
					"number of seconds, not '%s'\n",
					optarg);
				goto usage_error;
			}
			break;
		case 'h':
			usage(stdout);
			qf_servers_free(sh.servers, sh.n_servers);
			return 0;
		default:
			fprintf(stderr, "quorafs shell: unknown or incomplete "
				"option '%s'\n", argv[optind - 1]);
			goto usage_error;
		}
	}
	if (sh.n_servers == 0) {
		fprintf(stderr,
			"quorafs shell: -s ADDR[,ADDR...] is required\n");
		goto usage_error;
	}
	if (argc - optind < 1 || argc - optind > 2) {
		fprintf(stderr, "quorafs shell: expected DB [SQL]\n");
		goto usage_error;
	}
	sh.db = argv[optind];
	cfg.discovery_timeout_ms = timeout_ms;
	cfg.timeout_ms = timeout_ms;
	if (net_client_new(&cfg, &sh.client) != 0) {
		fprintf(stderr, "quorafs shell: out of memory\n");
		qf_servers_free(sh.servers, sh.n_servers);
		return 1;
	}
	if (connect_shell(&sh) != 0)
		rv = 1;
	else if (argc - optind == 2)
		rv = run_argument(&sh, argv[optind + 1]);
	else
		rv = run_input(&sh);
	if (fflush(stdout) != 0)
		rv = 1;
	net_client_free(sh.client);
	qf_servers_free(sh.servers, sh.n_servers);
	return rv;

usage_error:
	fprintf(stderr, "Run 'quorafs shell --help' for usage.\n");
	qf_servers_free(sh.servers, sh.n_servers);
	return 2;
}
