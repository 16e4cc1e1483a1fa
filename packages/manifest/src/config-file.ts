/** The project config file, scanned at the root besides the data directories. */
export const CONFIG_FILE = '.dsgconfig.yml';
