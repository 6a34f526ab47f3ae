import CreditsCore
import CreditsStore
import CreditsTestSupport
import CreditsWorker
import Logging
import Testing

/// The daily sweep of expired lots inside `serve`, and what it does when the database fails.
@Suite struct LotExpiryServiceTests {
    /// After a failed sweep: one minute, then twice as long each time, never past the daily sweep.
    @Test func aFailedSweepIsTriedAgainSoonerThanTheNextDay() {
        let day = LotRules.dayMs
        let delays = (0...13).map { LotExpiryService.delayMs(afterFailures: $0, intervalMs: day, retryMs: 60_000) }
        #expect(delays == [day, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_840_000, 7_680_000,
                           15_360_000, 30_720_000, 61_440_000, day, day])
        #expect(LotExpiryService.delayMs(afterFailures: 1_000_000, intervalMs: day, retryMs: 60_000) == day)
        #expect(LotExpiryService.delayMs(afterFailures: 3, intervalMs: 1_000, retryMs: 600) == 1_000)
    }

    /// The service against a database that fails every sweep at first: it keeps trying, and once
    /// the database answers, the expired lot is swept without waiting a day.
    @Test func theServiceSweepsOnceTheDatabaseAnswersAgain() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let clock = VirtualClock(startMs: 1_800_000_000_000)
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite", clock: clock.wallClock,
                                    lots: LotRules(promotionalLifetimeDays: 1))
        let grant = AdjustmentRequest(userId: "dee", credits: 40, adjustmentId: "promo", reason: "test", category: .promotional)
        _ = try await store.execute(.adjust(grant), idempotencyKey: nil)
        clock.advance(ms: LotRules.dayMs)
        let flaky = FlakyStore(store, failureRatePPM: 1_000_000, seed: 2)
        flaky.armed = true
        let service = LotExpiryService(manager: CreditManager(store: flaky), clock: clock.wallClock, retryMs: 5,
                                       logger: Logger(label: "test"))
        let running = Task { try await service.run() }
        defer { running.cancel() }
        await waitUntil { flaky.counts.failedBefore + flaky.counts.failedAfter >= 3 }
        #expect(flaky.counts.failedBefore + flaky.counts.failedAfter >= 3)  // tried again, and again
        flaky.armed = false
        // The next retry is at most 5·2^k ms away; the daily sweep would be a day.
        try await waitUntil { try await store.creditLots(userId: "dee").map(\.remaining) == [0] }
        #expect(try await store.creditLots(userId: "dee").map(\.remaining) == [0])
        #expect(try await store.reconcile().ok)
        running.cancel()
        _ = try? await running.value
        try await store.close()
    }
}
