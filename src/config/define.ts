// The user's config file shape. (Being written.)
export interface UserConfig {
  defaultBaseImage?: string;
}
export function defineConfig<T extends UserConfig>(config: T): T {
  return config;
}
