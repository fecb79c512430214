/*
 * receiver_config: the `mailedge receiver-config [-c FILE] [--for NAME]
 * [BACKEND...]` command. Prints, for each backend of the configuration (or
 * those named), the receiving servers' settings that agree with what the
 * edge sends (src/conf/receiver.c writes them). Its only I/O: reading the
 * file, resolving server names, and asking the kernel which source address
 * it would pick toward each server (a UDP socket connected, never sending).
 */
#ifndef MAILEDGE_RECEIVER_CONFIG_H
#define MAILEDGE_RECEIVER_CONFIG_H

/*
 * Runs the command; <argv>[0] is "receiver-config". Exit status: 0 printed,
 * 1 the configuration is invalid, 2 usage error (bad option, unknown
 * backend).
 */
int receiver_config_main(int argc, char **argv);

#endif
