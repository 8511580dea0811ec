/**
 * @qkvflow/cli — the `qkvflow` command line (bin `qkvflow`): train, finetune, eval, generate, analyze, configs.
 */
export { USAGE, UsageError, listConfigs, loadConfig, main, parseArgs, type ParsedArgs } from "./cli.js";
