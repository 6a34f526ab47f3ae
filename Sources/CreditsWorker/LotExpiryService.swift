import CreditsCore
import CreditsStore
import Logging
import ServiceLifecycle

/// Inside `credits serve`: sweeps expired lots to the expiry account at start and then once a
/// day. Expired credits are unspendable the moment they expire whether or not this has run; the
/// sweep makes the journal and the balances say so for users who do nothing.
public struct LotExpiryService: Service {
    public let manager: CreditManager
    public let clock: WallClock
    public let intervalMs: Int64
    public let logger: Logger

    public init(manager: CreditManager, clock: WallClock, intervalMs: Int64 = LotRules.dayMs, logger: Logger) {
        precondition(intervalMs > 0)
        self.manager = manager
        self.clock = clock
        self.intervalMs = intervalMs
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    do {
                        let swept = try await manager.expireCredits(nowMs: clock.nowMs())
                        if swept.users > 0 {
                            logger.info("expired lots swept", metadata: ["users": "\(swept.users)", "credits": "\(swept.credits)"])
                        }
                    } catch {
                        logger.error("expiry sweep failed; next one tomorrow", metadata: ["error": "\(error)"])
                    }
                    try await Task.sleep(for: .milliseconds(intervalMs))
                }
            }
        } catch is CancellationError {
            // Shutdown.
        }
    }
}
