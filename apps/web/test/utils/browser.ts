import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'

/** Debian's `chromium`, which .ci/run installs; nothing downloads a browser. */
export const CHROMIUM = '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, if they cannot: outside CI they skip, saying so, when
 * Chromium is missing; in CI (which installs it) a missing browser fails them instead.
 */
export const NO_BROWSER =
  existsSync(CHROMIUM) || process.env.CI
    ? false
    : `${CHROMIUM} is missing (apt-get install -y chromium): the dashboard's browser tests are skipped`

export const SCREENSHOTS = new URL('../screenshots/', import.meta.url)

/** Headless Chromium; `args` add to its flags, `env` to its environment (e.g. a HOME with its own NSS certificate database). */
export function launch(options: { args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', ...(options.args ?? [])],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  })
}

/** A browser tab that records every console error and warning, and uncaught errors. */
export interface Tab {
  page: Page
  context: BrowserContext
  /** `type: text` of each console error or warning, and each uncaught error. */
  problems: string[]
}

export async function openTab(browser: Browser, options: { width?: number } = {}): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: 900 } })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning')
      problems.push(`${message.type()}: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`))
  return { page, context, problems }
}

/** Opens `path` with the sign-in fragment `gate dashboard` prints, and waits for the signed-in app. */
export async function signedIn(tab: Tab, controlUrl: string, token: string, path = '/'): Promise<void> {
  await tab.page.goto(`${controlUrl}${path}#token=${encodeURIComponent(token)}`)
  await tab.page.getByRole('navigation', { name: 'Pages' }).waitFor()
}

/** Saves the page as it looks at 1280 and 360 px wide, full height, as `<name>-<width>.png`. */
export async function screenshots(tab: Tab, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true })
  for (const width of [1280, 360]) {
    await tab.page.setViewportSize({ width, height: 900 })
    // Charts resize on the next frame.
    await tab.page.waitForTimeout(150)
    await tab.page.screenshot({ path: new URL(`${name}-${width}.png`, SCREENSHOTS).pathname, fullPage: true })
  }
  await tab.page.setViewportSize({ width: 1280, height: 900 })
}
