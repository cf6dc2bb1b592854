// Regenerates docs/widget.png: the demo page with the widget open after one exchange.
// Usage (with a server running, e.g. `colloquy --store memory --echo-chunk-delay 30ms`):
//   node screenshot.mjs http://127.0.0.1:8080 ../../docs/widget.png
import { chromium } from "playwright-core";

const [api = "http://127.0.0.1:8080", out = "../../docs/widget.png"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: 30_000,
});
try {
  const page = await browser.newPage({
    viewport: { width: 1120, height: 720 },
    deviceScaleFactor: 1,
  });
  page.setDefaultTimeout(15_000);
  await page.goto(`${api}/widget/demo`);
  await page.evaluate(() => {
    for (const el of document.querySelectorAll("[data-origin]"))
      el.textContent = "https://chat.example.com";
  });
  await page.locator(".launcher").click();
  await page.locator("textarea").fill("Hello! Do you stream your answers word by word?");
  await page.locator("textarea").press("Enter");
  await page.waitForFunction(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    return (
      root.querySelectorAll(".msg.bot").length === 2 &&
      root.querySelector(".send").getAttribute("aria-label") === "Send"
    );
  });
  await page.locator("textarea").blur();
  await page.waitForTimeout(300); // the entry animation of the last bubble
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
