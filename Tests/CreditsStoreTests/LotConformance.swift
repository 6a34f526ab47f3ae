import CreditsCore
import CreditsStore
import Synchronization
import Testing

/// A clock the test moves by hand.
final class TestClock: Sendable {
    let ms: Mutex<Int64>
    init(_ start: Int64) { ms = Mutex(start) }
    func set(_ value: Int64) { ms.withLock { $0 = value } }
    var wallClock: WallClock { WallClock { [self] in ms.withLock { $0 } } }
}

/// Credit lots on every store: what each grant makes, the burn order, expiry the moment it
/// comes, refunds taking back their own purchase's lots, holds refilling the lots they took.
@Suite struct LotConformance {
    static let t0: Int64 = 1_800_000_000_000
    static let year = 365 * LotRules.dayMs

    func withStore(_ factory: StoreFactory, _ body: (FreshStore, TestClock) async throws -> Void) async throws {
        let clock = TestClock(Self.t0)
        let f = try await factory.make(.default, clock: clock.wallClock)
        do {
            try await body(f, clock)
        } catch {
            try? await f.close()
            throw error
        }
        let report = try await f.store.reconcile()
        #expect(report.ok, "\(report.problems)")
        try await f.close()
    }

    static func grant(_ user: String, _ credits: Int64, _ id: String, _ category: LotCategory) -> LedgerOperation {
        .adjust(AdjustmentRequest(userId: user, credits: credits, adjustmentId: id, reason: "test", category: category))
    }

    /// A user's lots read a page at a time: after a lot id, at most `limit`, in id order, and
    /// only theirs; reading them all pages through to the last.
    @Test(arguments: StoreFactory.all)
    func lotsArePagedById(factory: StoreFactory) async throws {
        try await withStore(factory) { f, _ in
            for i in 1...5 {
                _ = try await f.store.execute(Self.grant("pia", Int64(i), "pia-\(i)", .promotional), idempotencyKey: nil)
                _ = try await f.store.execute(Self.grant("pib", Int64(i), "pib-\(i)", .paid), idempotencyKey: nil)
            }
            let all = try await f.store.creditLots(userId: "pia", afterId: 0, limit: 100)
            #expect(all.map(\.granted) == [1, 2, 3, 4, 5] && all.allSatisfy { $0.userId == "pia" })
            #expect(all.map(\.id) == all.map(\.id).sorted())
            let first = try await f.store.creditLots(userId: "pia", afterId: 0, limit: 2)
            let second = try await f.store.creditLots(userId: "pia", afterId: first[1].id, limit: 2)
            let third = try await f.store.creditLots(userId: "pia", afterId: second[1].id, limit: 2)
            #expect((first + second + third).map(\.id) == all.map(\.id) && third.count == 1)
            #expect(try await f.store.creditLots(userId: "pia", afterId: all[4].id, limit: 2).isEmpty)
            #expect(try await f.store.creditLots(userId: "pia", pageSize: 2) == all)
            #expect(try await f.store.creditLots(userId: "pia", pageSize: 5) == all)
            await #expect(throws: CreditsError.self) { try await f.store.creditLots(userId: "pia", afterId: 0, limit: 0) }
        }
    }

    /// Every grant is a lot: a purchase's base is paid and never expires, its bonus and a
    /// milestone are promotional and expire a year later.
    @Test(arguments: StoreFactory.all)
    func grantsMakeLots(factory: StoreFactory) async throws {
        try await withStore(factory) { f, clock in
            _ = try await f.store.execute(purchase("ann", "creator", "pi_ann"), idempotencyKey: nil)
            clock.set(Self.t0 + 1_000)
            _ = try await f.store.execute(.milestone(MilestoneRequest(userId: "ann", milestone: "plays_1k")), idempotencyKey: nil)
            let lots = try await f.store.creditLots(userId: "ann")
            #expect(lots.map(\.category) == [.paid, .promotional, .promotional])
            #expect(lots.map(\.remaining) == [500, 50, 25])
            #expect(lots.map(\.expiresAtMs) == [nil, Self.t0 + Self.year, Self.t0 + 1_000 + Self.year])
            #expect(lots.map(\.source) == ["purchase:stripe:pi_ann", "purchase:stripe:pi_ann", "milestone:ann:plays_1k"])
        }
    }

    /// A spend burns promotional credits before paid ones, the soonest expiry first, and the
    /// journal row names the lots it consumed.
    @Test(arguments: StoreFactory.all)
    func aSpendBurnsPromotionalCreditsBeforePaidOnes(factory: StoreFactory) async throws {
        try await withStore(factory) { f, clock in
            _ = try await f.store.execute(Self.grant("bo", 100, "paid-1", .paid), idempotencyKey: nil)  // oldest, but paid
            clock.set(Self.t0 + 10)
            _ = try await f.store.execute(purchase("bo", "creator", "pi_bo"), idempotencyKey: nil)  // 500 paid + 50 promo
            clock.set(Self.t0 + 20)
            _ = try await f.store.execute(.milestone(MilestoneRequest(userId: "bo", milestone: "plays_1k")), idempotencyKey: nil)  // 25 promo, later expiry
            let lots = try await f.store.creditLots(userId: "bo")
            let (paid1, base, bonus, milestone) = (lots[0].id, lots[1].id, lots[2].id, lots[3].id)
            _ = try await f.store.execute(spend("bo", 60, "s1"), idempotencyKey: nil)
            let page = try await f.store.transactions(userId: "bo", limit: 1, cursor: nil)
            #expect(page.data.first?.lots == LotUsage([(bonus, 50), (milestone, 10)]))
            _ = try await f.store.execute(spend("bo", 150, "s2"), idempotencyKey: nil)
            let second = try await f.store.transactions(userId: "bo", limit: 1, cursor: nil)
            // Promotional gone (15 left of the milestone first), then the oldest paid lot, then the next.
            #expect(second.data.first?.lots == LotUsage([(milestone, 15), (paid1, 100), (base, 35)]))
            #expect(try await f.store.creditLots(userId: "bo").map(\.remaining) == [0, 465, 0, 0])
            #expect(try await f.store.balance(userId: "bo").balance == 465)
        }
    }

    /// An expired lot is unspendable from the millisecond it expires, before any sweep; the
    /// sweep (or the user's next operation) moves it to the expiry account.
    @Test(arguments: StoreFactory.all)
    func anExpiredLotCannotBeSpentTheMomentItExpires(factory: StoreFactory) async throws {
        try await withStore(factory) { f, clock in
            _ = try await f.store.execute(Self.grant("cy", 100, "promo-1", .promotional), idempotencyKey: nil)
            _ = try await f.store.execute(Self.grant("cy", 10, "paid-1", .paid), idempotencyKey: nil)
            _ = try await f.store.execute(Self.grant("dee", 40, "promo-2", .promotional), idempotencyKey: nil)
            let expiry = Self.t0 + Self.year
            clock.set(expiry - Self.year + 335 * LotRules.dayMs)  // 30 days before
            var b = try await f.store.balance(userId: "cy")
            #expect(b.balance == 110 && b.expiringSoon == 100 && b.nextExpiryAtMs == expiry)
            clock.set(expiry - 1)
            #expect(try await f.store.balance(userId: "cy").balance == 110)
            clock.set(expiry)
            b = try await f.store.balance(userId: "cy")
            #expect(b.balance == 10 && b.expiringSoon == 0)  // unspendable now, though not swept yet
            let refused = try await f.store.execute(spend("cy", 11, "s1"), idempotencyKey: nil)
            #expect(refused.outcome.rejection?.code == .insufficientCredits && refused.outcome.rejection?.available == 10)
            let page = try await f.store.transactions(userId: "cy", limit: 1, cursor: nil)
            #expect(page.data.first?.type == "expiry" && page.data.first?.credits == -100)
            #expect(page.data.first?.counterparty == "platform:expired")
            let ok = try await f.store.execute(spend("cy", 10, "s2"), idempotencyKey: nil)
            #expect(ok.outcome.balance == 0)
            // dee did nothing: the sweep moves her expired lot.
            #expect(try await f.store.balance(userId: "dee").balance == 0)
            let swept = try await CreditManager(store: f.store).expireCredits(nowMs: expiry)
            #expect(swept.users == 1 && swept.credits == 40)
            #expect(try await CreditManager(store: f.store).expireCredits(nowMs: expiry).credits == 0)
            #expect(try await f.store.creditLots(userId: "dee").map(\.remaining) == [0])
        }
    }

    /// A refund takes back the unspent part of its own purchase's lots first, then others.
    @Test(arguments: StoreFactory.all)
    func aRefundedPurchaseTakesBackItsOwnLot(factory: StoreFactory) async throws {
        try await withStore(factory) { f, clock in
            _ = try await f.store.execute(purchase("eve", "starter", "pi_old"), idempotencyKey: nil)  // 100 paid, oldest
            clock.set(Self.t0 + 10)
            _ = try await f.store.execute(purchase("eve", "creator", "pi_new"), idempotencyKey: nil)  // 500 paid + 50 promo
            _ = try await f.store.execute(spend("eve", 30, "s1"), idempotencyKey: nil)  // burns 30 of the creator bonus
            let refund = PaymentEventRequest(paymentMethod: .stripe, eventId: "evt_r", paymentId: "pi_new", kind: .refunded,
                                             refundedCents: 1_000)
            _ = try await f.store.execute(.paymentEvent(refund), idempotencyKey: nil)  // floor(550 × 1000 / 2000) = 275 back
            var lots = try await f.store.creditLots(userId: "eve")
            #expect(lots.map(\.remaining) == [100, 245, 0])  // its own lots: the 20 bonus left, then 255 of its base
            let full = PaymentEventRequest(paymentMethod: .stripe, eventId: "evt_r2", paymentId: "pi_new", kind: .refunded,
                                           refundedCents: 2_000)
            _ = try await f.store.execute(.paymentEvent(full), idempotencyKey: nil)  // 275 more: its last 245, then 30 of the other
            lots = try await f.store.creditLots(userId: "eve")
            #expect(lots.map(\.remaining) == [70, 0, 0])
            #expect(try await f.store.balance(userId: "eve").balance == 70)  // 650 − 30 spent − 550 taken back
        }
    }

    /// A failed upload's release puts its credits back in the lots its hold took them from.
    @Test(arguments: StoreFactory.all)
    func aReleaseRefillsTheLotsItsHoldTook(factory: StoreFactory) async throws {
        try await withStore(factory) { f, _ in
            _ = try await f.store.execute(purchase("fay", "creator", "pi_fay"), idempotencyKey: nil)
            _ = try await f.store.execute(StoreConformance.audio("up1", user: "fay"), idempotencyKey: nil)  // 60 held
            #expect(try await f.store.creditLots(userId: "fay").map(\.remaining) == [490, 0])
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "up1", userId: "fay", reason: "failed")), idempotencyKey: nil)
            #expect(try await f.store.creditLots(userId: "fay").map(\.remaining) == [500, 50])
        }
    }
}

extension LotConformance {
    /// A hold taken from a promotional lot that expires while the upload waits: released after,
    /// its credits go back to that lot, expired, so they are not spendable and the next sweep
    /// moves them to the expiry account (they do not come back as a lot that never expires); a
    /// capture after the expiry charges the held credits as on any day.
    @Test(arguments: StoreFactory.all)
    func aHoldOnALotThatExpiresReleasesIntoTheExpiredLot(factory: StoreFactory) async throws {
        try await withStore(factory) { f, clock in
            _ = try await f.store.execute(Self.grant("gil", 100, "promo-g", .promotional), idempotencyKey: nil)
            _ = try await f.store.execute(Self.grant("gil", 20, "paid-g", .paid), idempotencyKey: nil)
            _ = try await f.store.execute(StoreConformance.audio("up-g1", user: "gil"), idempotencyKey: nil)  // 60 held
            _ = try await f.store.execute(StoreConformance.audio("up-g2", user: "gil"), idempotencyKey: nil)  // 40 + 20
            #expect(try await f.store.creditLots(userId: "gil").map(\.remaining) == [0, 0])
            let expiry = Self.t0 + Self.year
            clock.set(expiry + 1)
            let released = try await f.store.execute(
                .release(SettleRequest(uploadId: "up-g1", userId: "gil", reason: "failed")), idempotencyKey: nil)
            #expect(released.outcome.rejection == nil)
            var lots = try await f.store.creditLots(userId: "gil")
            #expect(lots.count == 2 && lots.map(\.remaining) == [60, 0], "no new lot: \(lots)")
            var b = try await f.store.balance(userId: "gil")
            #expect(b.balance == 0 && b.reserved == 60, "the released 60 are expired credits")
            let refused = try await f.store.execute(spend("gil", 1, "s-g"), idempotencyKey: nil)
            #expect(refused.outcome.rejection?.code == .insufficientCredits)
            let swept = try await CreditManager(store: f.store).expireCredits(nowMs: expiry + 1)
            #expect(swept.credits == 0, "the spend's own transaction swept them first")
            lots = try await f.store.creditLots(userId: "gil")
            #expect(lots.map(\.remaining) == [0, 0])
            // The other hold (40 promotional, 20 paid) is captured after the expiry: charged in full.
            _ = try await f.store.execute(.capture(SettleRequest(uploadId: "up-g2", userId: "gil", reason: "")), idempotencyKey: nil)
            b = try await f.store.balance(userId: "gil")
            #expect(b.balance == 0 && b.reserved == 0 && b.totalSpent == 60)
        }
    }
}
