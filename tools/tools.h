/* Subcommands of the quorafs CLI.  Each returns the process exit code. */
#ifndef QF_TOOLS_H
#define QF_TOOLS_H

int qf_cmd_mount(int argc, char **argv);
int qf_cmd_bench(int argc, char **argv);

#endif /* QF_TOOLS_H */
