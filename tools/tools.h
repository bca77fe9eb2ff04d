/* Subcommands of the quorafs CLI.  Each returns the process exit code. */
#ifndef QF_TOOLS_H
#define QF_TOOLS_H

#include <stddef.h>

int qf_cmd_mount(int argc, char **argv);
int qf_cmd_bench(int argc, char **argv);
int qf_cmd_shell(int argc, char **argv);
int qf_cmd_cluster(int argc, char **argv);
int qf_cmd_worker(int argc, char **argv); /* internal: sql-worker */
int qf_cmd_verify(int argc, char **argv);
int qf_cmd_recover(int argc, char **argv);

/* Helpers of the protocol subcommands (in cmd_shell.c). */
/* Append the comma-separated addresses of @list to *@servers (*@n
 * entries, each malloc'ed); 0 or -ENOMEM. */
int qf_servers_add(char ***servers, size_t *n, const char *list);
void qf_servers_free(char **servers, size_t n);
/* Positive seconds (fractions allowed, at most a day) as milliseconds. */
int qf_parse_seconds(const char *s, unsigned *ms);

#endif /* QF_TOOLS_H */
