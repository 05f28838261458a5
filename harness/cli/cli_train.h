/* cli_train.h: `caopd train-demo`, a development driver for the trainer (base stage, one
 * domain with a method, greedy evaluation). CLI code: prints, returns an exit status. */
#ifndef CAOPD_CLI_TRAIN_H
#define CAOPD_CLI_TRAIN_H

/* argv[0] is "train-demo". */
int cli_train(int argc, char **argv);

#endif
