import CreditsCore
import CreditsStore
import Testing

/// Payments on every store: provider events racing each other and the purchase call, arrears,
/// and reconcile noticing a payment whose credits disagree with its facts.
@Suite struct PaymentConformance {
    func withStore(_ factory: StoreFactory, _ body: (FreshStore) async throws -> Void) async throws {
        let f = try await factory.make(.default)
        do {
            try await body(f)
        } catch {
            try? await f.close()
            throw error
        }
        try await f.close()
    }

    static func event(_ id: String, _ payment: String, _ kind: PaymentEventKind, user: String = "", refunded: Int64 = 0) -> LedgerOperation {
        .paymentEvent(PaymentEventRequest(
            paymentMethod: .stripe, eventId: id, paymentId: payment, kind: kind, userId: user,
            package: user.isEmpty ? "" : "creator", amountCents: kind == .succeeded ? 2000 : 0, refundedCents: refunded))
    }

    /// Per payment, all at once: the succeeded event three times, the purchase call twice, a
    /// partial refund twice and a stale smaller refund. Whatever order the writer picks, each
    /// buyer ends with 550 − floor(550 × 1000 / 2000) = 275, and every event applied once.
    @Test(arguments: StoreFactory.all)
    func eventsRacingPurchaseCallsMoveCreditsOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { f in
            let store = f.store
            var ops: [LedgerOperation] = []
            for i in 0..<25 {
                let user = "race_u\(i)", pay = "pi_race_\(i)"
                ops += Array(repeating: Self.event("evt_ok_\(i)", pay, .succeeded, user: user), count: 3)
                ops += Array(repeating: purchase(user, "creator", pay), count: 2)
                ops += Array(repeating: Self.event("evt_rf_\(i)", pay, .refunded, refunded: 1000), count: 2)
                ops.append(Self.event("evt_rf_old_\(i)", pay, .refunded, refunded: 500))
            }
            let results = try await withThrowingTaskGroup(of: OperationResult.self) { group in
                for op in ops.shuffled() { group.addTask { try await store.execute(op, idempotencyKey: nil) } }
                return try await group.reduce(into: [OperationResult]()) { $0.append($1) }
            }
            #expect(results.filter { !$0.replayed }.count == 25 * 4)  // 3 distinct events and 1 purchase per payment, once each
            for i in 0..<25 {
                #expect(try await store.balance(userId: "race_u\(i)").balance == 275)
            }
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }

    /// A refund PayPal names by id, with no refunded total (`total_refunded_amount` is optional).
    static func namedRefund(_ id: String, _ payment: String, _ refund: String, _ cents: Int64) -> LedgerOperation {
        .paymentEvent(PaymentEventRequest(paymentMethod: .paypal, eventId: id, paymentId: payment, kind: .refunded,
                                          refund: PaymentRefund(id: refund, cents: cents)))
    }

    /// Refunds whose events carry no total, racing the purchase and each other, each also told
    /// by a second event (another event id): each refund counts once and they add up, 500 + 700
    /// of 2000 taking back floor(550 × 1200 / 2000) = 330. A third refund later, in an operation
    /// of its own, adds to what the store kept: 1500 take back 412.
    @Test(arguments: StoreFactory.all)
    func refundsNamedByIdAddUpOnceEach(factory: StoreFactory) async throws {
        try await withStore(factory) { f in
            let store = f.store
            var ops: [LedgerOperation] = []
            for i in 0..<10 {
                let pay = "CAP-named-\(i)"
                ops.append(purchase("named_u\(i)", "creator", pay, .paypal))
                for (n, (refund, cents)) in [("RF-A-\(i)", Int64(500)), ("RF-B-\(i)", 700)].enumerated() {
                    ops += [Self.namedRefund("WH-\(i)-\(n)", pay, refund, cents), Self.namedRefund("WH-\(i)-\(n)-again", pay, refund, cents)]
                }
            }
            try await withThrowingTaskGroup(of: OperationResult.self) { group in
                for op in ops.shuffled() { group.addTask { try await store.execute(op, idempotencyKey: nil) } }
                try await group.waitForAll()
            }
            for i in 0..<10 {
                #expect(try await store.balance(userId: "named_u\(i)").balance == 550 - 330)
            }
            let third = try await store.execute(Self.namedRefund("WH-0-2", "CAP-named-0", "RF-C-0", 300), idempotencyKey: nil)
            guard case .paymentEvent(let r) = third.outcome else { Issue.record("\(third)"); return }
            #expect(r.creditsChange == -(412 - 330) && r.balance == 550 - 412 && r.status == "partially_refunded")
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
            // A refunded total below the refunds named is out of step.
            try await f.tamper("UPDATE credit_purchases SET refunded_cents = 1000 WHERE payment_id = 'CAP-named-1'")
            let tampered = try await store.reconcile()
            #expect(tampered.problems.contains { $0.contains("CAP-named-1") && $0.contains("less than the 1200") }, "\(tampered.problems)")
        }
    }

    @Test(arguments: StoreFactory.all)
    func arrearsAreRecordedAndRepaidAndReconcile(factory: StoreFactory) async throws {
        try await withStore(factory) { f in
            let store = f.store
            _ = try await store.execute(purchase("debtor", "creator", "pi_d"), idempotencyKey: nil)
            _ = try await store.execute(spend("debtor", 540, "up_d"), idempotencyKey: nil)
            let lost = try await store.execute(Self.event("evt_d1", "pi_d", .disputeOpened), idempotencyKey: nil)
            guard case .paymentEvent(let r) = lost.outcome else { Issue.record("\(lost)"); return }
            #expect(r.creditsChange == -550 && r.balance == -540 && r.status == "disputed")
            let refused = try await store.execute(spend("debtor", 1, "up_d2"), idempotencyKey: nil)
            #expect(refused.outcome.rejection?.code == .accountInArrears && refused.outcome.rejection?.owed == 540)
            // A milestone is a grant: it reduces the debt.
            _ = try await store.execute(.milestone(MilestoneRequest(userId: "debtor", milestone: "plays_1k")), idempotencyKey: nil)
            #expect(try await store.balance(userId: "debtor").balance == -515)
            #expect(try await store.reconcile().ok)
            let repaid = try await store.execute(purchase("debtor", "starter", "pi_d2"), idempotencyKey: nil)
            guard case .purchased(let p) = repaid.outcome else { Issue.record("\(repaid)"); return }
            #expect(p.arrearsRepaid == 100 && p.balance == -415)
            let won = try await store.execute(Self.event("evt_d2", "pi_d", .disputeWon), idempotencyKey: nil)
            guard case .paymentEvent(let w) = won.outcome else { Issue.record("\(won)"); return }
            #expect(w.creditsChange == 550 && w.balance == 135)
            let b = try await store.balance(userId: "debtor")
            #expect(b.totalPurchased == 650)
            let report = try await store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }

    /// Reconcile fails when a payment's facts and its credits disagree, or a balance is below zero
    /// with no reversal behind it.
    @Test(arguments: StoreFactory.all)
    func reconcileNoticesPaymentsAndBalancesOutOfStep(factory: StoreFactory) async throws {
        try await withStore(factory) { f in
            _ = try await f.store.execute(purchase("carol", "creator", "pi_c"), idempotencyKey: nil)
            #expect(try await f.store.reconcile().ok)
            try await f.tamper("UPDATE credit_purchases SET refunded_cents = 1000 WHERE payment_id = 'pi_c'")
            let report = try await f.store.reconcile()
            #expect(report.problems.contains { $0.contains("pi_c") && $0.contains("worth 275") }, "\(report.problems)")
            try await f.tamper("""
                UPDATE credit_purchases SET refunded_cents = 0 WHERE payment_id = 'pi_c';
                UPDATE user_credits SET balance = -5 WHERE user_id = 'carol';
                UPDATE platform_accounts SET balance = balance + 555 WHERE name = 'sales'
                """)
            let negative = try await f.store.reconcile()
            #expect(negative.problems.contains { $0.contains("user:carol") && $0.contains("below zero") }, "\(negative.problems)")
        }
    }

    /// Refund first, then the purchase call on its own: one operation posts the grant, its bonus
    /// and the take-back (three journal rows) in a transaction of its own.
    @Test(arguments: StoreFactory.all)
    func aRefundBeforeThePurchaseCallEndsRight(factory: StoreFactory) async throws {
        try await withStore(factory) { f in
            let early = try await f.store.execute(Self.event("evt_early", "pi_late", .refunded, refunded: 500), idempotencyKey: nil)
            guard case .paymentEvent(let e) = early.outcome else { Issue.record("\(early)"); return }
            #expect(e.status == "unclaimed" && e.creditsChange == 0)
            let bought = try await f.store.execute(purchase("late_u", "creator", "pi_late"), idempotencyKey: nil)
            guard case .purchased(let p) = bought.outcome else { Issue.record("\(bought)"); return }
            #expect(p.status == "partially_refunded" && p.balance == 413)
            let rows = try await f.store.transactions(userId: "late_u", limit: 10, cursor: nil).data
            #expect(rows.map(\.type) == ["payment_reversal", "purchase_bonus", "purchase"])
            let report = try await f.store.reconcile()
            #expect(report.ok, "\(report.problems)")
        }
    }
}
