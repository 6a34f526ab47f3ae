extension BatchPlanner {
    struct PaymentOutcome {
        var outcome: LedgerOutcome
        var changed: Bool
    }

    /// A purchase call or a provider event: merges what it says into the payment's state, then
    /// posts whatever brings the buyer's credits from this payment to `PaymentRules.target`.
    /// Because the target depends only on the merged facts, the same events in any order, with any
    /// duplicates, and either order of purchase call and confirmation, end in the same credits.
    func planPayment(
        _ op: LedgerOperation, state: PaymentState, balances: [String: Int64], current: inout [String: Int64],
        deltas: inout [String: UserDelta], platform: inout [PlatformAccount: Int64], journal: inout [JournalRow],
        lots ctx: inout LotContext, nextTransactionId: () -> Int64, nextPurchaseId: () -> Int64, nextLotId: () -> Int64,
        save: (PaymentState) -> Void
    ) -> PaymentOutcome {
        var p = state
        switch op {
        case .purchase(let r):
            guard let pkg = catalog.package(r.package) else { preconditionFailure("validated before planning") }
            if let owner = p.userId, owner != r.userId || p.package?.id != r.package {
                return PaymentOutcome(outcome: .rejected(CreditsError(
                    .idempotencyConflict,
                    "payment \(p.key) already bought the \(p.package?.id ?? "?") package for another request")), changed: false)
            }
            p.userId = r.userId
            p.package = pkg
            if r.grantAtOnce { p.facts.grantedOnCall = true }
        case .paymentEvent(let r):
            if p.userId == nil, !r.userId.isEmpty, let pkg = catalog.package(r.package) {
                p.userId = r.userId
                p.package = pkg
            }
            p.facts = p.facts.merging(r.kind, amountCents: r.amountCents, refundedCents: r.refundedCents, refund: r.refund)
        default:
            preconditionFailure("only purchases and payment events are payments")
        }

        if p.id == nil { p.id = nextPurchaseId() }
        var change: Int64 = 0
        var balanceAfter: Int64?
        var balanceBefore: Int64 = 0
        if let user = p.userId, let pkg = p.package {
            let target = PaymentRules.target(p.facts, package: pkg)
            var postings: [Posting] = []
            if target > p.net, p.creditsGranted == 0 {
                // The first grant is always the whole package, so the journal shows what was sold;
                // refunds known before it are taken back right after.
                postings.append(Posting(kind: .purchase, debit: .platform(.sales), credit: .user(user), amount: pkg.credits))
                if pkg.bonusCredits > 0 {
                    postings.append(Posting(kind: .purchaseBonus, debit: .platform(.promotions), credit: .user(user), amount: pkg.bonusCredits))
                }
                p.creditsGranted = pkg.totalCredits
            } else if target > p.net {
                postings.append(Posting(kind: .paymentRestore, debit: .platform(.sales), credit: .user(user), amount: target - p.net))
                p.creditsGranted += target - p.net
            }
            if target < p.net {
                postings.append(Posting(kind: .paymentReversal, debit: .user(user), credit: .platform(.sales), amount: p.net - target))
                p.creditsReversed += p.net - target
            }
            change = postings.reduce(0) { $0 + ($1.credit == .user(user) ? $1.amount : -$1.amount) }
            balanceBefore = current[user] ?? 0
            var balance = balanceBefore
            var held: Int64 = 0
            let source = p.key.reference
            _ = Self.post(postings, userId: user, reference: source, description: Self.description(op),
                          user: &balance, held: &held, platform: &platform, journal: &journal, nextTransactionId: nextTransactionId
            ) { posting, before in
                // A take-back empties this purchase's own lots first, then others in burn order;
                // what the lots cannot cover is arrears.
                if posting.kind == .paymentReversal {
                    return ctx.book.take(posting.amount, userId: user, nowMs: ctx.nowMs, preferring: source)
                }
                return ctx.usage(posting, userId: user, balanceBefore: before, source: source,
                                 category: posting.kind == .purchaseBonus ? .promotional : .paid, refill: LotUsage(),
                                 nextLotId: nextLotId)
            }
            precondition(balance == balanceBefore + change, "payment postings add up")
            if change != 0 {
                var delta = deltas[user] ?? UserDelta(userId: user, balanceBefore: balances[user] ?? 0)
                delta.balance += change
                delta.purchased += change
                deltas[user] = delta
                current[user] = balance
            }
            balanceAfter = balance
        }
        let changed = p != state
        if changed { save(p) }

        let purchaseId = p.userId == nil ? nil : p.id.map { "pur_\($0)" }
        switch op {
        case .purchase(let r):
            guard let pkg = p.package, let purchaseId, let balanceAfter else { preconditionFailure("a purchase claims its payment") }
            let repaid = balanceBefore < 0 && change > 0 ? min(-balanceBefore, change) : nil
            return PaymentOutcome(outcome: .purchased(PurchaseReceipt(
                purchaseId: purchaseId, userId: r.userId, package: pkg.id, credits: pkg.totalCredits,
                baseCredits: pkg.credits, bonusCredits: pkg.bonusCredits, priceCents: pkg.priceCents,
                paymentMethod: r.paymentMethod, paymentId: r.paymentId, status: p.status.rawValue, balance: balanceAfter,
                arrearsRepaid: repaid)), changed: changed)
        case .paymentEvent(let r):
            return PaymentOutcome(outcome: .paymentEvent(PaymentEventReceipt(
                eventId: r.eventId, paymentMethod: r.paymentMethod, paymentId: r.paymentId, event: r.kind,
                purchaseId: purchaseId, userId: p.userId, status: p.status.rawValue, creditsChange: change,
                balance: balanceAfter)), changed: changed)
        default:
            preconditionFailure("only purchases and payment events are payments")
        }
    }
}
