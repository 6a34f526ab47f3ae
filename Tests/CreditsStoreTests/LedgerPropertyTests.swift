import CreditsTestSupport
import CreditsCore
import CreditsStore
import Testing

/// Property: for any sequence of purchases, spends, adjustments, replays and key conflicts, the
/// store agrees with a simple model after every round, and every invariant holds at the end.
///
/// How: a seeded generator makes rounds of operations on distinct users, run concurrently (so they
/// share commits); with one operation per user per round, each outcome is predictable from the
/// model regardless of the order the writer picks. Replays and conflicts reuse keys of earlier
/// rounds. A failure names its seed and replays exactly.
@Suite struct LedgerPropertyTests {
    struct ModelUser {
        var balance: Int64 = 0
        var reserved: Int64 = 0
        /// Open holds: uploadId → credits.
        var holds: [String: Int64] = [:]
        var milestones: Set<String> = []
        var purchased: Int64 = 0
        var spent: Int64 = 0
        var earned: Int64 = 0
    }

    /// A payment as the model sees it: facts merged from events, and credits its buyer holds.
    struct ModelPayment {
        var user: String?
        var package: CreditPackage?
        var facts = PaymentFacts()
        var net: Int64 = 0
    }

    struct Done {
        var op: LedgerOperation
        var key: String?
        var outcome: LedgerOutcome
    }

    enum Planned {
        case new(LedgerOperation, key: String?)
        case replay(Done)
        case conflict(LedgerOperation, key: String?)
    }

    @Test(arguments: StoreFactory.all, [UInt64(1), 2, 3])
    func randomOperationsKeepEveryInvariant(factory: StoreFactory, seed: UInt64) async throws {
        let fresh = try await factory.make(.default)
        defer { fresh.dir.remove() }
        let store = fresh.store
        let catalog = Catalog.default
        var rng = SplitMix64(seed: seed)
        var model: [String: ModelUser] = [:]
        var payments: [String: ModelPayment] = [:]
        /// Payment ids whose events were sent before any purchase, by the user who will buy with them.
        var early: [String: String] = [:]
        var done: [Done] = []
        var counter = 0
        var operations = 0
        var seen: [String: Int] = [:]  // what the run exercised, so a generator change cannot hollow it out
        let users = (0..<24).map { "user_\($0)" }

        for _ in 0..<500 {
            let roundUsers = users.shuffled(using: &rng).prefix(Int.random(in: 1...12, using: &rng))
            var planned: [Planned] = []
            for user in roundUsers {
                counter += 1
                let key: String? = Bool.random(using: &rng) ? "k\(counter)" : nil
                let dice = Int.random(in: 0..<100, using: &rng)
                if dice < 15, let earlier = done.randomElement(using: &rng) {
                    planned.append(.replay(earlier))
                } else if dice < 22, let earlier = done.filter({ $0.key != nil }).randomElement(using: &rng) {
                    // An earlier key with a new body: refused, nothing changes.
                    planned.append(.conflict(spend(user, 1, "conflict_\(counter)"), key: earlier.key))
                } else if dice < 30, let id = early.first(where: { $0.value == user })?.key {
                    // A purchase whose provider events came first.
                    early[id] = nil
                    planned.append(.new(purchase(user, catalog.packages.randomElement(using: &rng)!.id, id), key: key))
                } else if dice < 40 {
                    let pkg = catalog.packages.randomElement(using: &rng)!.id
                    planned.append(.new(purchase(user, pkg, "pay_\(counter)"), key: key))
                } else if dice < 45 {
                    // A provider event: on one of the user's payments, or on one nobody bought with yet.
                    let mine = payments.filter { $0.value.user == user }.keys.sorted()
                    let id: String
                    if let pick = mine.randomElement(using: &rng), dice < 44 {
                        id = pick
                    } else {
                        id = early.first(where: { $0.value == user })?.key ?? "pay_early_\(counter)"
                        early[id] = user
                    }
                    // An open dispute is often closed next, so that restorations happen too.
                    let kind = payments[id]?.facts.dispute == .open && Bool.random(using: &rng)
                        ? [PaymentEventKind.disputeWon, .disputeLost].randomElement(using: &rng)!
                        : PaymentEventKind.allCases.randomElement(using: &rng)!
                    planned.append(.new(.paymentEvent(PaymentEventRequest(
                        paymentMethod: .stripe, eventId: "evt_\(counter)", paymentId: id, kind: kind,
                        refundedCents: kind == .refunded ? Int64.random(in: 0...10_000, using: &rng) : 0)), key: key))
                } else if dice < 70 {
                    planned.append(.new(spend(user, Int64.random(in: 1...400, using: &rng), "up_\(counter)"), key: key))
                } else if dice < 80 {
                    let type = ["audio", "video", "album"].randomElement(using: &rng)!
                    let features = Array(["premium_encryption", "quality_variants", "custom_thumbnail"].shuffled(using: &rng)
                        .prefix(Int.random(in: 0...3, using: &rng)))
                    planned.append(.new(.upload(UploadRequest(
                        uploadId: "file_\(counter)", userId: user, fileType: type, fileCount: Int.random(in: 1...8, using: &rng),
                        features: features, sizeBytes: 1_000, priority: .medium)), key: key))
                } else if dice < 90, let open = model[user]?.holds.keys.sorted().randomElement(using: &rng) {
                    let settle = SettleRequest(uploadId: open, userId: user, reason: "test")
                    planned.append(.new(Bool.random(using: &rng) ? .capture(settle) : .release(settle), key: key))
                } else if dice < 90 {
                    planned.append(.new(spend(user, 1, "small_\(counter)"), key: key))
                } else if dice < 93,
                          let m = catalog.milestones.map(\.id).filter({ !(model[user]?.milestones.contains($0) ?? false) }).randomElement(using: &rng) {
                    model[user, default: ModelUser()].milestones.insert(m)  // reserved now: one grant per user
                    planned.append(.new(.milestone(MilestoneRequest(userId: user, milestone: m)), key: key))
                } else {
                    let amount = Int64.random(in: 1...300, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
                    planned.append(.new(adjust(user, amount, "adj_\(counter)"), key: key))
                }
            }
            operations += planned.count

            let results = await withTaskGroup(of: (Int, Result<OperationResult, any Error>).self) { group in
                for (i, p) in planned.enumerated() {
                    group.addTask {
                        let (op, key): (LedgerOperation, String?) = switch p {
                        case .new(let op, let key), .conflict(let op, let key): (op, key)
                        case .replay(let d): (d.op, d.key)
                        }
                        do { return (i, .success(try await store.execute(op, idempotencyKey: key))) } catch { return (i, .failure(error)) }
                    }
                }
                return await group.reduce(into: [Int: Result<OperationResult, any Error>]()) { $0[$1.0] = $1.1 }
            }

            for (i, p) in planned.enumerated() {
                let result = results[i]!
                switch p {
                case .replay(let d):
                    let r = try result.get()
                    #expect(r.replayed, "seed \(seed): replay of \(d.op) not marked")
                    #expect(r.outcome == d.outcome, "seed \(seed): replay of \(d.op) changed its outcome")
                case .conflict:
                    guard case .failure(let e) = result, (e as? CreditsError)?.code == .idempotencyConflict else {
                        Issue.record("seed \(seed): key reuse was not a conflict: \(result)")
                        continue
                    }
                case .new(let op, let key):
                    let r = try result.get()
                    #expect(!r.replayed)
                    if let paymentId = op.paymentKey?.paymentId {
                        // Payments: the model merges the facts and moves the buyer to the target.
                        let before = payments[paymentId] ?? ModelPayment()
                        let owner = before.user ?? (op.userId.isEmpty ? nil : op.userId)
                        let expected = Self.applyPayment(op, to: &payments[paymentId, default: ModelPayment()], catalog: catalog)
                        if expected < 0 { seen["reversal", default: 0] += 1 }
                        if expected > 0, case .paymentEvent = op { seen["restore", default: 0] += 1 }
                        if owner == nil { seen["event before purchase", default: 0] += 1 }
                        if case .purchase = op, before.facts != PaymentFacts() { seen["purchase after events", default: 0] += 1 }
                        if let owner {
                            model[owner, default: ModelUser()].balance += expected
                            model[owner, default: ModelUser()].purchased += expected
                        }
                        #expect(r.outcome.balance == owner.map { model[$0]!.balance }, "seed \(seed): \(op) gave \(r.outcome)")
                        done.append(Done(op: op, key: key, outcome: r.outcome))
                        continue
                    }
                    let wasInArrears = (model[op.userId]?.balance ?? 0) < 0
                    let expected = Self.apply(op, to: &model[op.userId, default: ModelUser()], catalog: catalog)
                    switch (expected, r.outcome) {
                    case (.some(let balance), let outcome):
                        #expect(outcome.balance == balance, "seed \(seed): \(op) gave \(outcome), model says balance \(balance)")
                    case (.none, let outcome):
                        let code: ErrorCode = wasInArrears ? .accountInArrears : .insufficientCredits
                        seen[code.rawValue, default: 0] += 1
                        #expect(outcome.rejection?.code == code, "seed \(seed): \(op) gave \(outcome), model says \(code)")
                    }
                    done.append(Done(op: op, key: key, outcome: r.outcome))
                }
            }
        }

        #expect(operations >= 3_000, "seed \(seed): only \(operations) operations")
        for what in ["reversal", "restore", "event before purchase", "purchase after events", "ACCOUNT_IN_ARREARS", "INSUFFICIENT_CREDITS"] {
            #expect(seen[what, default: 0] > 0, "seed \(seed): no \(what) in the run: \(seen)")
        }
        for (user, m) in model {
            var b = try await store.balance(userId: user)
            b.nextExpiryAtMs = nil  // a year out: the bonus and milestone lots'
            #expect(b == UserCredits(userId: user, balance: m.balance, reserved: m.reserved, totalEarned: m.earned,
                                     totalSpent: m.spent, totalPurchased: m.purchased),
                    "seed \(seed): \(user)")
        }
        let report = try await store.reconcile()
        #expect(report.ok, "seed \(seed): \(report.problems)")
        try await store.close()
    }

    /// The model of a payment: the change to its buyer's credits.
    static func applyPayment(_ op: LedgerOperation, to p: inout ModelPayment, catalog: Catalog) -> Int64 {
        switch op {
        case .purchase(let r):
            p.user = r.userId
            p.package = catalog.package(r.package)
            p.facts.grantedOnCall = true
        case .paymentEvent(let r):
            p.facts = p.facts.merging(r.kind, amountCents: r.amountCents, refundedCents: r.refundedCents)
        default:
            preconditionFailure("not a payment")
        }
        guard let package = p.package else { return 0 }
        let target = PaymentRules.target(p.facts, package: package)
        defer { p.net = target }
        return target - p.net
    }

    /// The model: the balance after `op`, or nil when it must be refused (insufficient credits, or
    /// arrears: nothing is spent while the balance is below zero).
    static func apply(_ op: LedgerOperation, to user: inout ModelUser, catalog: Catalog) -> Int64? {
        switch op {
        case .purchase, .paymentEvent:
            preconditionFailure("payments are modelled by applyPayment")
        case .expire:
            return user.balance  // not generated: nothing expires within the test's year
        case .spend(let r):
            guard user.balance >= r.credits else { return nil }
            user.balance -= r.credits
            user.spent += r.credits
        case .adjust(let r):
            guard r.credits > 0 || user.balance + r.credits >= 0 else { return nil }
            user.balance += r.credits
            if r.credits > 0 { user.earned += r.credits }
        case .upload(let r):
            let credits = try! Pricing.estimate(r.estimateRequest, catalog: catalog).credits
            guard user.balance >= credits, user.balance >= 0 else { return nil }
            user.balance -= credits
            user.reserved += credits
            user.holds[r.uploadId] = credits
        case .capture(let r):
            let credits = user.holds.removeValue(forKey: r.uploadId)!
            user.reserved -= credits
            user.spent += credits
        case .release(let r):
            let credits = user.holds.removeValue(forKey: r.uploadId)!
            user.reserved -= credits
            user.balance += credits
        case .sponsor:
            return user.balance  // not generated: no creator is registered in this test
        case .milestone(let r):
            let credits = catalog.milestone(r.milestone)!.credits
            user.balance += credits
            user.earned += credits
        }
        return user.balance
    }
}
