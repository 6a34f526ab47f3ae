/// Retries with exponential backoff and jitter, and the premium of a replacement message.
public struct RetrySchedule: Sendable, Equatable {
    public var attemptsMax: Int = 5
    public var delayBaseMs: Int64 = 30_000
    public var delayMaxMs: Int64 = 600_000

    public init() {}

    /// Messages an upload may be sent in, in all: `attemptsMax` in its batch, then `attemptsMax`
    /// on its own. A restart or a takeover that puts an upload back in the queue starts its
    /// attempts over, so the messages that carried it are counted in the database too, and a
    /// process that takes it over sends it only in the messages it has left.
    public var sendsPerUploadMax: Int { 2 * attemptsMax }

    /// Delay before attempt `attempt` (2, 3, ...), given `jitterPPM` in 0..<1,000,000 from an
    /// injected random source: half the exponential delay plus up to the other half.
    public func delayMs(beforeAttempt attempt: Int, jitterPPM: Int64) -> Int64 {
        precondition(attempt >= 2 && (0..<1_000_000).contains(jitterPPM))
        let full = Self.doubledMs(delayBaseMs, times: min(attempt - 2, 20), cappedAt: delayMaxMs)
        return full / 2 + (full / 2) * jitterPPM / 1_000_000
    }

    /// `baseMs`·2^`times`, or `capMs` if that is less: the doubling wait that every retry here
    /// uses (messages, the expiry sweep, the Lotus history), safe from overflow for any `times`.
    public static func doubledMs(_ baseMs: Int64, times: Int, cappedAt capMs: Int64) -> Int64 {
        precondition(times >= 0)
        guard times < 63, baseMs <= capMs >> times else { return capMs }
        return baseMs << times
    }

    /// A stuck message is replaced with more than 1.25× its premium: p + ⌊p/4⌋ + 1, which passes
    /// Lotus's replace-by-fee check in its older form (at least p + ⌊p·64/256⌋ + 1) and its
    /// current one (⌊p·110/100⌋ + 1), and never below the premium floor.
    public static func replacementPremium(_ premium: Int128) -> Int128 {
        max(Filecoin.premiumFloor, premium + premium / 4 + 1)
    }
}
