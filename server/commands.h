/* commands: the subcommands of the seekd binary, each taking its own argv (argv[0] = name). */
#ifndef SEEKD_COMMANDS_H
#define SEEKD_COMMANDS_H

#define SEEKD_VERSION "0.1.0"

int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_check_stages(int argc, char **argv);

#endif
