import CreditsCore
import ServiceLifecycle

/// Runs the gas manager's steps inside `credits serve`, once per tick, until shutdown.
public struct GasManagerService: Service {
    public let manager: FilecoinGasManager
    public let tickMs: Int64

    public init(manager: FilecoinGasManager, tickMs: Int64) {
        precondition(tickMs > 0)
        self.manager = manager
        self.tickMs = tickMs
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
                while !Task.isCancelled {
                    await manager.step()
                    try await Task.sleep(for: .milliseconds(tickMs))
                }
            }
        } catch is CancellationError {
            // Shutdown: a clean stop.
        }
        // Drain: give messages in flight a few seconds to land and settle. Whatever is left is
        // safe: recover() queues it again at the next start, and settlements are idempotent.
        let deadline = ContinuousClock.now + .milliseconds(min(2 * tickMs, 10_000))
        while await manager.drainInFlight() > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(min(tickMs, 1_000)))
        }
    }
}
