import CreditsCore
import CreditsStore
import Logging
import ServiceLifecycle

/// Inside `credits serve`: sweeps expired lots to the expiry account at start and then once a
/// day. Expired credits are unspendable the moment they expire whether or not this has run; the
/// sweep makes the journal and the balances say so for users who do nothing. A sweep that fails
/// (the database) is tried again after `retryMs`, then twice as long each time, never later than
/// the next daily sweep (`delayMs`); a sweep is idempotent, so one that failed halfway finishes.
public struct LotExpiryService: Service {
    public let manager: CreditManager
    public let clock: WallClock
    public let intervalMs: Int64
    public let retryMs: Int64
    public let logger: Logger

    public init(manager: CreditManager, clock: WallClock, intervalMs: Int64 = LotRules.dayMs, retryMs: Int64 = 60_000,
                logger: Logger) {
        precondition(intervalMs > 0 && retryMs > 0)
        self.manager = manager
        self.clock = clock
        self.intervalMs = intervalMs
        self.retryMs = retryMs
        self.logger = logger
    }

    /// The wait before the next sweep after `failures` failed sweeps in a row (0: the last one
    /// succeeded): `intervalMs`, or `retryMs`·2^(failures − 1) up to `intervalMs`.
    public static func delayMs(afterFailures failures: Int, intervalMs: Int64, retryMs: Int64) -> Int64 {
        guard failures > 0 else { return intervalMs }
        return RetrySchedule.doubledMs(retryMs, times: min(failures - 1, 40), cappedAt: intervalMs)
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var failures = 0
                while !Task.isCancelled {
                    var failure: (any Error)?
                    do {
                        let swept = try await manager.expireCredits(nowMs: clock.nowMs())
                        if swept.users > 0 {
                            logger.info("expired lots swept", metadata: ["users": "\(swept.users)", "credits": "\(swept.credits)"])
                        }
                    } catch {
                        failure = error
                    }
                    failures = failure == nil ? 0 : failures + 1
                    let delay = Self.delayMs(afterFailures: failures, intervalMs: intervalMs, retryMs: retryMs)
                    if let failure {
                        logger.error("expiry sweep failed; tried again later",
                                     metadata: ["error": "\(DatabaseOutage.describe(failure))", "failures": "\(failures)", "retryInMs": "\(delay)"])
                    }
                    try await Task.sleep(for: .milliseconds(delay))
                }
            }
        } catch is CancellationError {
            // Shutdown.
        }
    }
}
