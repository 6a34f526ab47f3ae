import CreditsCore
import Logging
import ServiceLifecycle

/// Runs the gas manager's steps inside `credits serve`, once per tick, until shutdown. Ticks keep
/// a fixed rate (`nextTickMs`): a step's own time does not push the next one later, so that a
/// tick comes every epoch (the policy learns each height's base fee once whatever the ticks see:
/// `FilecoinGasManager.observe(head:)`).
public struct GasManagerService: Service {
    public let manager: FilecoinGasManager
    public let tickMs: Int64
    let logger: Logger?

    /// With a `logger`, the shutdown is logged: when it starts, and what it left in flight.
    public init(manager: FilecoinGasManager, tickMs: Int64, logger: Logger? = nil) {
        precondition(tickMs > 0)
        self.manager = manager
        self.tickMs = tickMs
        self.logger = logger
    }

    public func run() async throws {
        // A failure is logged, and tried again at each step: the HTTP API stays up meanwhile.
        try? await manager.recover()
        // The model mode's history, asked of the chain while the steps run.
        let loading = Task { await manager.loadHistory() }
        defer { loading.cancel() }
        // On shutdown the loop stops between steps; money moved only in committed ledger
        // operations.
        do {
            try await cancelWhenGracefulShutdown {
                let start = ContinuousClock.now
                var scheduledMs: Int64 = 0
                while !Task.isCancelled {
                    await manager.step()
                    scheduledMs = Self.nextTickMs(after: scheduledMs, nowMs: start.duration(to: .now).wholeMilliseconds, tickMs: tickMs)
                    try await Task.sleep(until: start.advanced(by: .milliseconds(scheduledMs)), clock: .continuous)
                }
            }
        } catch is CancellationError {
            // Shutdown: a clean stop.
        }
        // Drain: give messages in flight a few seconds to land and settle. Whatever is left is
        // safe: recover() queues it again at the next start, and settlements are idempotent.
        let drainMs = min(2 * tickMs, 10_000)
        let deadline = ContinuousClock.now + .milliseconds(drainMs)
        var left = await manager.drainInFlight()
        logger?.notice("shutting down: the gas manager sends nothing new and waits for messages in flight",
                       metadata: ["in_flight": "\(left)", "wait_ms": "\(drainMs)"])
        while left > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(min(tickMs, 1_000)))
            left = await manager.drainInFlight()
        }
        if left > 0 {
            logger?.warning("gas manager stopped with messages still in flight or writes owed; the next start waits for them",
                            metadata: ["in_flight": "\(left)"])
        } else {
            logger?.notice("gas manager stopped: nothing in flight")
        }
    }

    /// When the tick after the one scheduled at `scheduledMs` is due, with `nowMs` the time its
    /// step ended (both from the service's start): one tick later, or, after a step that took
    /// longer than that, the first tick on the same grid still to come (missed ticks are skipped,
    /// not run in a burst).
    public static func nextTickMs(after scheduledMs: Int64, nowMs: Int64, tickMs: Int64) -> Int64 {
        let next = scheduledMs + tickMs
        guard nowMs > next else { return next }
        return next + (nowMs - next + tickMs - 1) / tickMs * tickMs
    }
}
