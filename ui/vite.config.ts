import { defineConfig } from "vitest/config";
import solid from "vite-plugin-solid";

export default defineConfig({
  plugins: [solid()],
  // Relative asset paths: the Tauri shell serves dist/ from its own scheme.
  base: "./",
  build: {
    outDir: "dist",
    target: "es2021",
    sourcemap: true,
    // The desktop app (index.html) and the browser guest page the relay serves (guest.html).
    rollupOptions: { input: { main: "index.html", guest: "guest.html" } },
  },
  server: { port: 5173, strictPort: false },
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    environment: "node",
  },
});
