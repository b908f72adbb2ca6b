// The config the examples run with: the builtin offline base, so everything works with no network.
import { defineConfig } from 'tsko';

export default defineConfig({
  defaultBaseImage: 'builtin://static',
});
