import CreditsChain
import CreditsCore
import CreditsStore
import CreditsTestSupport
import CreditsWorker
import Synchronization
import Testing

/// A chain whose first push lets the caller record the message, then takes the caller's
/// database away (`then`) and fails without sending: a process whose push failed just as its
/// database became unreachable, so that the writes about it are owed.
final class RefusesFirstPush: ChainWrapper {
    let inner: SimulatedChain
    let then: @Sendable () -> Void
    private let refused = Mutex(false)

    init(_ inner: SimulatedChain, then: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.then = then
    }

    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        let first = refused.withLock { r in
            defer { r = true }
            return !r
        }
        guard first else { return try await inner.push(message, recordingFirst: record) }
        return try await inner.push(message) { cid in
            try await record(cid)
            self.then()
            throw ChainError("the node refused the message", retryable: true)
        }
    }
}

extension GasManagerTests {
    /// Instance `tag` ("aaaa" or "bbbb") over the setup's database and clock, taking over a
    /// peer's uploads once untouched for 10 minutes; `attemptsMax` overrides the retries' maximum.
    func instance(_ s: Setup, _ tag: String, store: any CreditStore, chain: any ChainClient, attemptsMax: Int? = nil) -> FilecoinGasManager {
        var config = s.manager.config
        config.instanceTag = tag
        config.takeoverAfterMs = 600_000
        if let attemptsMax { config.retry.attemptsMax = attemptsMax }
        return FilecoinGasManager(store: store, chain: chain, clock: s.clock.wallClock, config: config)
    }

    /// An hour on, b takes over what looks abandoned and sends it; the upload "x" as it is then.
    func hourLaterTakeover(_ s: Setup, by b: FilecoinGasManager) async -> UploadRecord? {
        s.clock.advance(ms: 700_000)
        do {
            try await b.recover()
            _ = try await b.processNow()
            return try await s.store.upload(uploadId: "x")
        } catch {
            Issue.record("b's takeover: \(error)")
            return nil
        }
    }

    /// Four epochs of both instances' ticks; then upload "x" has landed in one message and is
    /// captured once (u1 spent its 15 credits, nothing held).
    func expectLandsOnce(_ s: Setup, _ a: FilecoinGasManager, _ b: FilecoinGasManager) async throws {
        for _ in 0..<4 {
            s.clock.advance(ms: 30_000)
            await a.step()
            await b.step()
        }
        #expect(try await s.store.upload(uploadId: "x")?.status == .confirmed)
        let carrying = s.chain.landedMessages().filter { !$0.reverted && $0.message.uploadIds.contains("x") }
        #expect(carrying.count == 1, "\(carrying.map(\.cid))")
        let balance = try await s.store.balance(userId: "u1")
        #expect(balance.totalSpent == 15 && balance.reserved == 0)
    }
}

extension GasManagerTests {
    /// Instance a's push fails just as its database goes away: its upload's move to failed is
    /// owed, and its next attempt waits. An hour on (more than `takeoverAfterMs`), its peer b
    /// takes the upload over (the message was never sent), sends it in a batch of its own, and the
    /// message is in flight when a's database comes back. a's late write must leave the upload
    /// alone: moved to failed, a would send it again at once while b's message flies, and both
    /// would land (stored twice, gas paid twice). The upload lands once, in b's message, and is
    /// captured once; a's attempt finds nothing to send. With `lastAttempt`, a's failed push was
    /// its upload's last attempt, so its release is owed too: written late, it must not refund
    /// b's upload (b's message would land on a released hold: stored, never charged).
    @Test(arguments: [false, true])
    func aLateWriteLeavesAnUploadAPeerTookOverAlone(lastAttempt: Bool) async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let flaky = FlakyStore(s.store, failureRatePPM: 1_000_000, seed: 1)
        let a = instance(s, "aaaa", store: flaky, chain: RefusesFirstPush(s.chain) { flaky.armed = true }, attemptsMax: lastAttempt ? 1 : nil)
        let b = instance(s, "bbbb", store: s.store, chain: s.chain)

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try? await a.processNow()
        // Recorded as sent before the push failed; the move to failed (and the release) is owed.
        #expect(try await s.store.upload(uploadId: "x")?.status == .submitted)
        #expect(await a.retriesWaiting == (lastAttempt ? 0 : 1))

        s.clock.advance(ms: 700_000)
        try await b.recover()
        _ = try await b.processNow()
        // b took it over (its message was never sent) and sent it: in flight in b's batch.
        let taken = try #require(try await s.store.upload(uploadId: "x"))
        #expect(taken.status == .submitted && taken.batchId?.contains("_bbbb_") == true, "\(taken)")
        #expect(await b.messagesInFlight == 1)

        // a's database is back: its owed writes go through, and its next attempt is due.
        flaky.armed = false
        await a.step()
        let after = try #require(try await s.store.upload(uploadId: "x"))
        #expect(after.status == .submitted && after.batchId == taken.batchId, "\(after)")
        #expect(await a.retriesWaiting == 0)
        #expect(await a.messagesInFlight == 0)

        try await expectLandsOnce(s, a, b)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// The same release, racing the takeover: a's push fails on the upload's last attempt, so a
    /// moves it to failed in its batch and releases its hold. Between the two, an hour passes (a's
    /// database slow or away) and b takes the upload over and sends it. a's release, already
    /// decided, must not refund it: the ledger checks in the release's own transaction that the
    /// upload is still failed in a's batch (a check read before the release would pass here).
    @Test
    func aReleaseRacingATakeoverLeavesTheTakersUploadAlone() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let hooked = FlakyStore(s.store, failureRatePPM: 0, seed: 1)
        let a = instance(s, "aaaa", store: hooked, chain: RefusesFirstPush(s.chain) {}, attemptsMax: 1)
        let b = instance(s, "bbbb", store: s.store, chain: s.chain)
        let taken = Mutex<UploadRecord?>(nil)
        hooked.beforeNextRelease {
            let u = await hourLaterTakeover(s, by: b)
            taken.withLock { $0 = u }
        }

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try? await a.processNow()
        // b took it over before a's release reached the ledger, and sent it in its own batch.
        let t = try #require(taken.withLock { $0 })
        #expect(t.status == .submitted && t.batchId?.contains("_bbbb_") == true, "\(t)")
        #expect(await b.messagesInFlight == 1)
        let after = try #require(try await s.store.upload(uploadId: "x"))
        #expect(after.status == .submitted && after.batchId == t.batchId, "\(after)")
        #expect(try await s.store.balance(userId: "u1").reserved == 15)

        try await expectLandsOnce(s, a, b)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// a claims the upload, then stalls for an hour before its push (a node that hangs, a
    /// paused process). b takes the upload over and sends it. a's push must not send it too:
    /// recording its message, a finds the upload no longer batched in its batch and sends nothing.
    @Test
    func aPushAfterATakeoverSendsNothing() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let b = instance(s, "bbbb", store: s.store, chain: s.chain)
        let taken = Mutex<UploadRecord?>(nil)
        let stalls = BeforeFirstPush(s.chain) {
            let u = await hourLaterTakeover(s, by: b)
            taken.withLock { $0 = u }
        }
        let a = instance(s, "aaaa", store: s.store, chain: stalls)

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try? await a.processNow()
        let t = try #require(taken.withLock { $0 })
        #expect(t.status == .submitted && t.batchId?.contains("_bbbb_") == true, "\(t)")
        #expect(await a.messagesInFlight == 0)
        #expect(await b.messagesInFlight == 1)
        let after = try #require(try await s.store.upload(uploadId: "x"))
        #expect(after.status == .submitted && after.batchId == t.batchId, "\(after)")

        try await expectLandsOnce(s, a, b)
        // a's row for the message it did not send is closed as unsent: no gas on record for it.
        let rows = try await s.store.gasTransactions(sinceMs: 0, limit: 10)
        #expect(rows.filter { $0.batchId.contains("_aaaa_") }.allSatisfy { $0.status == .unsent && $0.totalCost == 0 }, "\(rows)")
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// b reads a's upload as untouched for an hour (a's push failed as its database went away),
    /// and is about to take it back into its queue when a's database returns: a moves it to
    /// failed, and its retry sends it again in a's batch. b's move must then leave it alone (it
    /// is no longer untouched): queued, b would send it too while a's message flies.
    @Test
    func aTakeoverLeavesAnUploadItsPeerTouchedAfterReadingIt() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let flaky = FlakyStore(s.store, failureRatePPM: 1_000_000, seed: 1)
        let a = instance(s, "aaaa", store: flaky, chain: RefusesFirstPush(s.chain) { flaky.armed = true })
        let hooked = FlakyStore(s.store, failureRatePPM: 0, seed: 2)
        let b = instance(s, "bbbb", store: hooked, chain: s.chain)

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try? await a.processNow()
        #expect(try await s.store.upload(uploadId: "x")?.status == .submitted)
        #expect(await a.retriesWaiting == 1)

        s.clock.advance(ms: 700_000)
        let resent = Mutex<UploadRecord?>(nil)
        hooked.beforeNextTakeBack {
            flaky.armed = false
            await a.step()  // the owed move to failed, then the retry, due long ago
            let u = try? await s.store.upload(uploadId: "x")
            resent.withLock { $0 = u }
        }
        try await b.recover()
        let r = try #require(resent.withLock { $0 })
        #expect(r.status == .submitted && r.batchId?.contains("_aaaa_") == true, "\(r)")
        #expect(await a.messagesInFlight == 1)
        _ = try? await b.processNow()
        #expect(await b.messagesInFlight == 0)
        let after = try #require(try await s.store.upload(uploadId: "x"))
        #expect(after.status == .submitted && after.batchId == r.batchId, "\(after)")

        try await expectLandsOnce(s, a, b)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }

    /// a's push fails as its database goes away, so a's retry of the upload waits. An hour on, b
    /// takes the upload over; b's push fails too, so the upload is failed in b's batch, with b's
    /// retry waiting. a's database comes back: a's retry must leave the upload to b's (it claims
    /// only what failed in its own batch), or a and b would take turns with one upload past the
    /// named maximum of attempts, and a new message from a could land beside b's given-up one.
    @Test
    func aRetryLeavesAnUploadFailedInAPeersBatch() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let flaky = FlakyStore(s.store, failureRatePPM: 1_000_000, seed: 1)
        let a = instance(s, "aaaa", store: flaky, chain: RefusesFirstPush(s.chain) { flaky.armed = true })
        let b = instance(s, "bbbb", store: s.store, chain: RefusesFirstPush(s.chain) {})

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        _ = try? await a.processNow()
        #expect(await a.retriesWaiting == 1)
        s.clock.advance(ms: 700_000)
        try await b.recover()
        _ = try await b.processNow()
        let failed = try #require(try await s.store.upload(uploadId: "x"))
        #expect(failed.status == .failed && failed.batchId?.contains("_bbbb_") == true, "\(failed)")
        #expect(await b.retriesWaiting == 1)

        flaky.armed = false
        await a.step()  // a's owed move (left alone) and its retry, due long ago
        let after = try #require(try await s.store.upload(uploadId: "x"))
        #expect(after.status == .failed && after.batchId == failed.batchId, "\(after)")
        #expect(await a.retriesWaiting == 0)
        #expect(await a.messagesInFlight == 0)

        try await expectLandsOnce(s, a, b)
        let landed = try #require(try await s.store.upload(uploadId: "x"))
        #expect(landed.batchId == failed.batchId, "\(landed)")
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// Each instance picks up every queued upload, so a and b both know upload x, and both may
    /// send it at once. Here b claims it just before a's claim reaches the database, and b's push
    /// fails as b goes away: x is failed in b's batch, and a's claim finds nothing. An hour on, a
    /// takes x back into the queue, and must then pick it up and send it. Until 2026-12-03 a kept
    /// x as an upload it knew, skipped it when picking up the queue, and x stayed queued, its hold
    /// held, until a restarted; and an instance beside others kept every upload it had lost a
    /// claim for.
    @Test
    func anUploadLostInAClaimRaceIsSentOnceTakenBack() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let hooked = FlakyStore(s.store, failureRatePPM: 0, seed: 1)
        let a = instance(s, "aaaa", store: hooked, chain: s.chain)
        let b = instance(s, "bbbb", store: s.store, chain: RefusesFirstPush(s.chain) {})
        let claimedFirst = Mutex<[String]?>(nil)
        hooked.beforeNextClaim {
            let sent = try? await b.processNow()
            claimedFirst.withLock { $0 = sent }
        }

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .high))
        #expect(await a.uploadsTracked == 1)
        #expect(try await a.processNow() == [])
        #expect(claimedFirst.withLock { $0 }?.count == 1, "b claimed x just before a's claim")
        let failed = try #require(try await s.store.upload(uploadId: "x"))
        #expect(failed.status == .failed && failed.batchId?.contains("_bbbb_") == true, "\(failed)")
        #expect(await a.uploadsTracked == 0)

        s.clock.advance(ms: 700_000)
        try await expectLandsOnce(s, a, b)
        let landed = try #require(try await s.store.upload(uploadId: "x"))
        #expect(landed.batchId?.contains("_aaaa_") == true, "\(landed)")
        #expect(await a.uploadsTracked == 0)
        #expect(await b.uploadsTracked == 0)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// Both instances pick up a low-priority upload, which their policies hold for a cheaper
    /// moment. b sends it (an operator's process-batch on b). At a's next tick the upload is no
    /// longer queued, and a's policy lets it go: a neither decides with it nor tracks it. Until
    /// 2026-12-03 it stayed in a's policy until a's own attempt found it gone, up to 4 hours on.
    @Test
    func anUploadAPeerSentLeavesThePolicyAtItsNextTick() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let a = instance(s, "aaaa", store: s.store, chain: s.chain)
        let b = instance(s, "bbbb", store: s.store, chain: s.chain)

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .low))
        s.clock.advance(ms: 30_000)
        await a.step()
        #expect(await a.queueLength == 1, "held: one low-priority upload waits")
        #expect(try await b.processNow().count == 1)

        s.clock.advance(ms: 30_000)
        await a.step()
        #expect(await a.queueLength == 0)
        #expect(await a.uploadsTracked == 0)
        try await expectLandsOnce(s, a, b)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// a's claim of a low-priority upload fails (the database is away), so a gives it back to
    /// the queue, keeping the base fee it was queued at until it picks it up again. b claims it
    /// first and sends it. At a's next tick the upload is no longer queued, and a keeps nothing
    /// about it. Until 2026-12-04 a kept that base fee for good: b settles the upload, and
    /// nothing in a let it go.
    @Test
    func anUploadGivenBackThatAPeerSentIsNotKept() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let flaky = FlakyStore(s.store, failureRatePPM: 1_000_000, seed: 1)
        let a = instance(s, "aaaa", store: flaky, chain: s.chain)
        let b = instance(s, "bbbb", store: s.store, chain: s.chain)

        _ = try await a.queueUpload(UploadRequest(uploadId: "x", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .low))
        s.clock.advance(ms: 30_000)
        await a.step()
        #expect(await a.queueLength == 1, "held: one low-priority upload waits")
        flaky.armed = true
        await #expect(throws: CreditsError.self) { try await a.processNow() }
        flaky.armed = false
        #expect(await a.uploadsTracked == 1, "given back")
        _ = await a.drainInFlight()  // writes what a owes: its claim undone, if it was taken
        #expect(try await s.store.upload(uploadId: "x")?.status == .queued)
        #expect(try await b.processNow().count == 1)

        s.clock.advance(ms: 30_000)
        await a.step()
        #expect(await a.uploadsTracked == 0)
        try await expectLandsOnce(s, a, b)
        #expect(await a.uploadsTracked == 0)
        #expect(try await s.store.reconcile().ok)
        try await s.store.close()
    }
}

extension GasManagerTests {
    /// An upload queued through this instance while its tick reads the queue (after the read, so
    /// not in it) stays in its policy: only what was waiting before the read is let go.
    @Test
    func anUploadQueuedDuringTheQueueReadStaysInThePolicy() async throws {
        let s = try setup()
        defer { s.dir.remove() }
        try await fund(s, "u1", 100)
        let hooked = FlakyStore(s.store, failureRatePPM: 0, seed: 1)
        let a = instance(s, "aaaa", store: hooked, chain: s.chain)
        hooked.afterNextQueueRead {
            _ = try? await a.queueUpload(UploadRequest(uploadId: "y", userId: "u1", fileType: "audio", sizeBytes: 1, priority: .low))
        }
        s.clock.advance(ms: 30_000)
        await a.step()
        #expect(try await s.store.upload(uploadId: "y")?.status == .queued)
        #expect(await a.queueLength == 1)
        #expect(await a.uploadsTracked == 1)
        try await s.store.close()
    }
}
