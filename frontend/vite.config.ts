import { defineConfig } from "vite";

// Django serves dist/index.html at "/" and the built assets through staticfiles (WhiteNoise),
// so every URL Vite writes must start with STATIC_URL.
export default defineConfig({
  base: "/static/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
  },
});
