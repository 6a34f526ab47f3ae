import CreditsCore

/// `credit_purchases` rows as payments: the columns both stores read and write.
enum PaymentRows {
    /// Read in this order by `decode`.
    static let columns = """
        id, payment_method, payment_id, user_id, package, base_credits, bonus_credits, price_cents, granted_on_call,
        succeeded, failed, amount_cents, refunded_cents, dispute, reversed, credits_granted, credits_reversed, created_at,
        refunds
        """
    /// How many values `columns` reads.
    static let count = columns.split(separator: ",").count

    static func decode(_ v: [SQLValue]) throws -> PaymentState {
        guard v.count == count, let method = PaymentMethod(rawValue: v[1].text), let refunds = decodeRefunds(v[18].text) else {
            throw StoreInvariantError(description: "a credit_purchases row that is not a payment")
        }
        var facts = PaymentFacts()
        facts.grantedOnCall = v[8].int != 0
        facts.succeeded = v[9].int != 0
        facts.failed = v[10].int != 0
        facts.amountCents = v[11].int
        facts.refundedCents = v[12].int
        facts.dispute = DisputeState(rawValue: v[13].text) ?? .none
        facts.reversed = v[14].int != 0
        facts.refunds = refunds
        let userId: String? = v[3] == .null ? nil : v[3].text
        let package: CreditPackage? = v[4] == .null ? nil
            : CreditPackage(id: v[4].text, credits: v[5].int, bonusCredits: v[6].int, priceCents: v[7].int)
        return PaymentState(
            id: v[0].int, paymentMethod: method, paymentId: v[2].text, userId: userId, package: package, facts: facts,
            creditsGranted: v[15].int, creditsReversed: v[16].int, createdAtMs: v[17].int)
    }

    /// The values of an upsert, in the order of `upsertColumns`.
    static let upsertColumns = """
        id, user_id, package, payment_method, payment_id, credits, base_credits, bonus_credits, price_cents, status,
        granted_on_call, succeeded, failed, amount_cents, refunded_cents, dispute, reversed, credits_granted,
        credits_reversed, created_at, updated_at, refunds
        """

    /// One `?` per upsert column (SQLite's parameters).
    static let upsertPlaceholders = upsertColumns.split(separator: ",").map { _ in "?" }.joined(separator: ", ")

    /// Every column but the keys and created_at is replaced on conflict.
    static let upsertConflict = """
        ON CONFLICT (payment_method, payment_id) DO UPDATE SET user_id = excluded.user_id, package = excluded.package,
            credits = excluded.credits, base_credits = excluded.base_credits, bonus_credits = excluded.bonus_credits,
            price_cents = excluded.price_cents, status = excluded.status, granted_on_call = excluded.granted_on_call,
            succeeded = excluded.succeeded, failed = excluded.failed, amount_cents = excluded.amount_cents,
            refunded_cents = excluded.refunded_cents, dispute = excluded.dispute, reversed = excluded.reversed,
            credits_granted = excluded.credits_granted, credits_reversed = excluded.credits_reversed,
            updated_at = excluded.updated_at, refunds = excluded.refunds
        """

    enum Value {
        case int(Int64)
        case text(String?)
    }

    static func values(_ p: PaymentState, nowMs: Int64) -> [Value] {
        guard let id = p.id else { preconditionFailure("the planner numbers every payment it writes") }
        let f = p.facts
        return [
            .int(id), .text(p.userId), .text(p.package?.id), .text(p.paymentMethod.rawValue), .text(p.paymentId),
            .int(p.package?.totalCredits ?? 0), .int(p.package?.credits ?? 0), .int(p.package?.bonusCredits ?? 0),
            .int(p.package?.priceCents ?? 0), .text(p.status.rawValue),
            .int(f.grantedOnCall ? 1 : 0), .int(f.succeeded ? 1 : 0), .int(f.failed ? 1 : 0), .int(f.amountCents),
            .int(f.refundedCents), .text(f.dispute.rawValue), .int(f.reversed ? 1 : 0),
            .int(p.creditsGranted), .int(p.creditsReversed), .int(p.createdAtMs ?? nowMs), .int(nowMs),
            .text(encodeRefunds(f.refunds)),
        ]
    }

    /// `id=cents` by id, joined by commas: neither character is allowed in an identifier.
    static func encodeRefunds(_ refunds: [String: Int64]) -> String {
        refunds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// nil when the text is not what `encodeRefunds` writes.
    static func decodeRefunds(_ text: String) -> [String: Int64]? {
        var refunds: [String: Int64] = [:]
        guard !text.isEmpty else { return refunds }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = part.split(separator: "=", omittingEmptySubsequences: false)
            guard pair.count == 2, Identifier.isValid(String(pair[0])), let cents = Int64(pair[1]), cents >= 0,
                  refunds.updateValue(cents, forKey: String(pair[0])) == nil
            else { return nil }
        }
        return refunds
    }
}
