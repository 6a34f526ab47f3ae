import CreditsWorker
import Testing

/// The worker's tick schedule inside `serve`.
@Suite struct GasManagerServiceTests {
    /// A step's own time does not push the ticks later: they stay on the grid, one a tick, so a
    /// tick comes every epoch. A step longer than a tick skips the ticks it overran.
    @Test func ticksKeepAFixedRate() {
        let tick: Int64 = 30_000
        #expect(GasManagerService.nextTickMs(after: 0, nowMs: 250, tickMs: tick) == 30_000)
        #expect(GasManagerService.nextTickMs(after: 30_000, nowMs: 59_999, tickMs: tick) == 60_000)
        #expect(GasManagerService.nextTickMs(after: 30_000, nowMs: 60_000, tickMs: tick) == 60_000)
        // Overran by 1 ms and by a whole tick: the next tick on the grid, no burst of late ones.
        #expect(GasManagerService.nextTickMs(after: 30_000, nowMs: 60_001, tickMs: tick) == 90_000)
        #expect(GasManagerService.nextTickMs(after: 30_000, nowMs: 90_000, tickMs: tick) == 90_000)
        #expect(GasManagerService.nextTickMs(after: 30_000, nowMs: 95_000, tickMs: tick) == 120_000)

        // A day of 400 ms steps: 2,880 ticks, each at its own epoch (a sleep of a tick after each
        // step would have drifted 19 minutes and skipped 38 epochs).
        var scheduled: Int64 = 0
        var epochs: Set<Int64> = [0]
        for _ in 1..<2_880 {
            scheduled = GasManagerService.nextTickMs(after: scheduled, nowMs: scheduled + 400, tickMs: tick)
            epochs.insert(scheduled / tick)
        }
        #expect(scheduled == 2_879 * tick && epochs.count == 2_880)
    }
}
