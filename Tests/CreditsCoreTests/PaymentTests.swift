import CreditsCore
import Testing

/// Plans operations against an empty ledger (or the given payments and balances), as a store would.
func plan(
    _ ops: [LedgerOperation], payments: [PaymentKey: PaymentState] = [:], balances: [String: Int64] = [:],
    lots: [CreditLot] = [], nowMs: Int64 = 0
) -> BatchPlan {
    var txn: Int64 = 0
    var pur: Int64 = 0
    var lot: Int64 = 100
    return BatchPlanner(catalog: .default).plan(
        ops.map { KeyedOperation(operation: $0, keys: [$0.naturalKey], requestHash: Array($0.canonicalForm.utf8)) },
        existingKeys: [:], balances: balances, payments: payments, lots: lots, nowMs: nowMs, platformBalances: [:],
        nextTransactionId: { txn += 1; return txn }, nextPurchaseId: { pur += 1; return pur }, nextLotId: { lot += 1; return lot })
}

private func event(_ kind: PaymentEventKind, _ id: String, payment: String = "pi_1", refunded: Int64 = 0) -> LedgerOperation {
    .paymentEvent(PaymentEventRequest(paymentMethod: .stripe, eventId: id, paymentId: payment, kind: kind, refundedCents: refunded))
}

private func buy(_ user: String = "u1", _ package: String = "creator", payment: String = "pi_1", grantAtOnce: Bool = true) -> LedgerOperation {
    .purchase(PurchaseRequest(userId: user, package: package, paymentMethod: .stripe, paymentId: payment, grantAtOnce: grantAtOnce))
}

@Suite struct PaymentRulesTests {
    let creator = Catalog.default.package("creator")!

    @Test func purchasePostsBaseFromSalesAndBonusFromPromotions() {
        let p = plan([buy()])
        #expect(p.journal.map { Posting(kind: $0.kind, debit: $0.debit, credit: $0.credit, amount: $0.amount) } == [
            Posting(kind: .purchase, debit: .platform(.sales), credit: .user("u1"), amount: 500),
            Posting(kind: .purchaseBonus, debit: .platform(.promotions), credit: .user("u1"), amount: 50),
        ])
        #expect(p.users.map { [$0.balance, $0.purchased, $0.balanceBefore] } == [[550, 550, 0]])
        #expect(p.payments.first?.status == .completed)
        #expect(p.journal.allSatisfy { $0.reference == "purchase:stripe:pi_1" })
    }

    @Test func starterHasNoBonusRow() {
        let p = plan([buy("u1", "starter", payment: "p")])
        #expect(p.journal.count == 1)
        #expect(p.users.first?.balance == 100)
    }

    /// Issue #5: a refund takes back floor(credits × refunded / paid).
    @Test(arguments: [(Int64(500), Int64(137)), (1, 0), (3, 0), (4, 1), (1999, 549), (2000, 550), (5000, 550), (0, 0)])
    func partialRefundTakesBackTheFlooredShare(refundedCents: Int64, takenBack: Int64) {
        var facts = PaymentFacts()
        facts.succeeded = true
        facts = facts.merging(.refunded, amountCents: 2000, refundedCents: refundedCents)
        #expect(PaymentRules.takenBackForRefunds(facts, package: creator) == takenBack)
        #expect(PaymentRules.target(facts, package: creator) == 550 - takenBack)
    }

    /// The same events in every order end in the same facts, credits and status.
    @Test func eventsCommuteInEveryOrder() {
        let events: [(PaymentEventKind, Int64)] = [(.succeeded, 0), (.refunded, 500), (.refunded, 1200), (.disputeOpened, 0), (.disputeWon, 0)]
        var results = Set<String>()
        func permute(_ rest: [(PaymentEventKind, Int64)], _ facts: PaymentFacts) {
            if rest.isEmpty {
                results.insert("\(PaymentRules.target(facts, package: creator)) \(PaymentRules.status(facts, package: creator))")
                return
            }
            for i in rest.indices {
                var next = rest
                let (kind, refunded) = next.remove(at: i)
                // Each event delivered twice: duplicates change nothing.
                let merged = facts.merging(kind, amountCents: 2000, refundedCents: refunded)
                permute(next, merged.merging(kind, amountCents: 2000, refundedCents: refunded))
            }
        }
        permute(events, PaymentFacts())
        // Refunded 1200 of 2000: floor(550 × 1200 / 2000) = 330 taken back.
        #expect(results == ["220 partiallyRefunded"])
    }

    /// PayPal refunds whose events carry no refunded total (the field is optional): each refund,
    /// named by its id, counts once however often it is told, and they add up. A reported total
    /// counts too, whichever is more, in every order: here 500 + 700 + 300 = 1500 of 2000 beats
    /// the 1200 reported, and floor(550 × 1500 / 2000) = 412 are taken back.
    @Test func refundsNamedByIdAddUpOnceEachInEveryOrder() {
        let events: [(Int64, PaymentRefund?)] = [
            (0, PaymentRefund(id: "RF-A", cents: 500)), (1200, PaymentRefund(id: "RF-B", cents: 700)),
            (0, PaymentRefund(id: "RF-C", cents: 300)), (0, nil),
        ]
        var results: [PaymentFacts] = []
        func permute(_ rest: [(Int64, PaymentRefund?)], _ facts: PaymentFacts) {
            if rest.isEmpty { return results.append(facts) }
            for i in rest.indices {
                var next = rest
                let (total, refund) = next.remove(at: i)
                let merged = facts.merging(.refunded, amountCents: 0, refundedCents: total, refund: refund)
                permute(next, merged.merging(.refunded, amountCents: 0, refundedCents: total, refund: refund))
            }
        }
        permute(events, PaymentFacts().merging(.succeeded, amountCents: 2000, refundedCents: 0))
        #expect(results.count == 24 && results.allSatisfy { $0 == results[0] })
        let facts = results[0]
        #expect(facts.refundedCents == 1500 && facts.refunds.count == 3)
        #expect(PaymentRules.target(facts, package: creator) == 550 - 412)
        #expect(PaymentRules.status(facts, package: creator) == .partiallyRefunded)
        // Two refunds alone, no total anywhere: 500 + 700.
        let two = PaymentFacts().merging(.succeeded, amountCents: 2000, refundedCents: 0)
            .merging(.refunded, amountCents: 0, refundedCents: 0, refund: PaymentRefund(id: "RF-A", cents: 500))
            .merging(.refunded, amountCents: 0, refundedCents: 0, refund: PaymentRefund(id: "RF-B", cents: 700))
        #expect(PaymentRules.target(two, package: creator) == 550 - 330)
    }

    /// Past `Limits.refundsPerPaymentMax` refunds a new one is not named (a total still counts),
    /// and one already named still counts once.
    @Test func refundsNamedAreBounded() {
        var facts = PaymentFacts().merging(.succeeded, amountCents: 2000, refundedCents: 0)
        for i in 0..<Limits.refundsPerPaymentMax {
            facts = facts.merging(.refunded, amountCents: 0, refundedCents: 0, refund: PaymentRefund(id: "RF\(i)", cents: 1))
        }
        #expect(facts.refundedCents == Int64(Limits.refundsPerPaymentMax))
        let past = facts.merging(.refunded, amountCents: 0, refundedCents: 0, refund: PaymentRefund(id: "RF-past", cents: 1))
        #expect(past.refunds.count == Limits.refundsPerPaymentMax && past.refundedCents == facts.refundedCents)
        #expect(facts.merging(.refunded, amountCents: 0, refundedCents: 0, refund: PaymentRefund(id: "RF0", cents: 1)) == facts)
        #expect(past.merging(.refunded, amountCents: 0, refundedCents: 1500).refundedCents == 1500)
    }

    /// A named refund is part of the event's fingerprint; an event without one keeps the
    /// fingerprint it had before refunds were named, so keys stored then still replay.
    @Test func aNamedRefundIsValidatedAndFingerprinted() throws {
        let bare = PaymentEventRequest(paymentMethod: .paypal, eventId: "WH-1", paymentId: "CAP1", kind: .refunded, refundedCents: 500)
        #expect(LedgerOperation.paymentEvent(bare).canonicalForm
                == ["payment-event", "paypal", "WH-1", "CAP1", "refunded", "", "", "0", "500"].joined(separator: "\u{1F}"))
        var named = bare
        named.refund = PaymentRefund(id: "RF1", cents: 500)
        #expect(LedgerOperation.paymentEvent(named).canonicalForm != LedgerOperation.paymentEvent(bare).canonicalForm)
        try LedgerOperation.paymentEvent(named).validate(catalog: .default)
        for bad in [PaymentRefund(id: "RF 1", cents: 500), PaymentRefund(id: "RF1", cents: -1),
                    PaymentRefund(id: "RF1", cents: Limits.catalogPriceCentsMax + 1)] {
            named.refund = bad
            #expect(throws: CreditsError.self) { try LedgerOperation.paymentEvent(named).validate(catalog: .default) }
        }
    }

    @Test func aSuccessBeatsAFailedAttemptInEitherOrder() {
        let a = PaymentFacts().merging(.failed, amountCents: 0, refundedCents: 0).merging(.succeeded, amountCents: 2000, refundedCents: 0)
        let b = PaymentFacts().merging(.succeeded, amountCents: 2000, refundedCents: 0).merging(.failed, amountCents: 0, refundedCents: 0)
        #expect(a == b)
        #expect(PaymentRules.target(a, package: creator) == 550)
        var onCall = PaymentFacts()
        onCall.grantedOnCall = true
        #expect(PaymentRules.target(onCall.merging(.failed, amountCents: 0, refundedCents: 0), package: creator) == 0)
        #expect(PaymentRules.status(onCall.merging(.failed, amountCents: 0, refundedCents: 0), package: creator) == .failed)
    }

    @Test func disputesTakeBackWhileOpenRestoreWhenWonKeepWhenLost() {
        let paid = PaymentFacts().merging(.succeeded, amountCents: 2000, refundedCents: 0)
        let open = paid.merging(.disputeOpened, amountCents: 0, refundedCents: 0)
        #expect(PaymentRules.target(open, package: creator) == 0)
        #expect(PaymentRules.status(open, package: creator) == .disputed)
        #expect(PaymentRules.target(open.merging(.disputeWon, amountCents: 0, refundedCents: 0), package: creator) == 550)
        let lost = open.merging(.disputeLost, amountCents: 0, refundedCents: 0)
        #expect(PaymentRules.target(lost, package: creator) == 0)
        #expect(PaymentRules.status(lost, package: creator) == .reversed)
        // A late "won" cannot undo a loss.
        #expect(lost.merging(.disputeWon, amountCents: 0, refundedCents: 0) == lost)
    }

    @Test func anAmountBelowThePriceGrantsNothing() {
        let under = PaymentFacts().merging(.succeeded, amountCents: 1999, refundedCents: 0)
        #expect(PaymentRules.target(under, package: creator) == 0)
        #expect(PaymentRules.status(under, package: creator) == .failed)
    }

    /// A refund the balance cannot cover leaves the buyer below zero; spending is then refused
    /// with ACCOUNT_IN_ARREARS, and the next purchase repays the debt first.
    @Test func reversalBeyondTheBalanceIsArrearsRepaidByTheNextPurchase() {
        let bought = PaymentState(id: 1, paymentMethod: .stripe, paymentId: "pi_1", userId: "u1", package: creator,
                                  facts: { var f = PaymentFacts(); f.grantedOnCall = true; return f }(), creditsGranted: 550)
        let p = plan([
            event(.failed, "evt_1"),
            .spend(SpendRequest(userId: "u1", credits: 1, fileUploadId: "f1")),
            buy("u1", "starter", payment: "pi_2"),
        ], payments: [bought.key: bought], balances: ["u1": 50])
        guard case .success(let r0) = p.results[0], case .paymentEvent(let e) = r0.outcome,
              case .success(let r1) = p.results[1], case .rejected(let refusal) = r1.outcome,
              case .success(let r2) = p.results[2], case .purchased(let receipt) = r2.outcome
        else { Issue.record("unexpected \(p.results)"); return }
        #expect(e.creditsChange == -550)
        #expect(e.balance == -500)
        #expect(e.status == "failed")
        #expect(refusal.code == .accountInArrears)
        #expect(refusal.owed == 500)
        #expect(receipt.arrearsRepaid == 100)
        #expect(receipt.balance == -400)
        #expect(p.users.map { [$0.balance, $0.purchased, $0.balanceBefore] } == [[-450, -450, 50]])
        #expect(p.users[0].floor == -400)
    }

    @Test func aPaymentBoughtByOneRequestConflictsWithAnother() {
        let claimed = LedgerOperation.paymentEvent(PaymentEventRequest(
            paymentMethod: .stripe, eventId: "evt_1", paymentId: "pi_1", kind: .succeeded, userId: "u1", package: "creator"))
        let p = plan([claimed, buy("u2")])
        guard case .success(let r) = p.results[1], case .rejected(let e) = r.outcome else {
            Issue.record("\(p.results[1])"); return
        }
        #expect(e.code == .idempotencyConflict)
        #expect(p.users.map(\.userId) == ["u1"])
    }

    /// `--require-payment-confirmation`: the call records a pending purchase; the event grants.
    @Test func pendingPurchaseIsGrantedByItsConfirmation() {
        let p = plan([buy(grantAtOnce: false), event(.succeeded, "evt_1")])
        guard case .success(let r0) = p.results[0], case .purchased(let pending) = r0.outcome,
              case .success(let r1) = p.results[1], case .paymentEvent(let e) = r1.outcome
        else { Issue.record("\(p.results)"); return }
        #expect(pending.status == "pending")
        #expect(pending.balance == 0)
        #expect(e.creditsChange == 550)
        #expect(e.status == "completed")
    }
}
