/**
 * The logger Gate's packages log to: pino's shape (an object of fields, then a message), so the
 * daemon hands its pino logger in and a test a silent one.
 */
export interface Logger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}
