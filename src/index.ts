// tsko's library entry: what a tsko.config.ts imports.
export { defineConfig } from './config/define.js';
export type { UserConfig } from './config/define.js';
