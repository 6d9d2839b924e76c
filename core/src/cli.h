/* The command line (DESIGN §1d). The last line of stdout is the machine-
 * readable result; explanations go to stderr. */
#ifndef SG_CLI_H
#define SG_CLI_H

int sg_cli_main(int argc, char **argv);

#endif
