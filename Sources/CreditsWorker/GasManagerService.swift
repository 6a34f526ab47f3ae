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
        try await manager.recover()
        // On shutdown the loop stops between steps; money moved only in committed ledger
        // operations, and uploads caught mid-flight are queued again by the next start's recover().
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
    }
}
