/// What a payment provider told us about a payment, reduced to the facts that decide its credits.
public enum PaymentEventKind: String, Sendable, Codable, Equatable, CaseIterable {
    /// Stripe `payment_intent.succeeded`, PayPal `PAYMENT.CAPTURE.COMPLETED`.
    case succeeded
    /// Stripe `payment_intent.payment_failed`, PayPal `PAYMENT.CAPTURE.DENIED`.
    case failed
    /// Stripe `charge.refunded` (full or partial), PayPal `PAYMENT.CAPTURE.REFUNDED`.
    case refunded
    /// Stripe `charge.dispute.created`: the money is withdrawn while the dispute runs.
    case disputeOpened = "dispute_opened"
    /// Stripe `charge.dispute.closed` with status won (or an inquiry closed without a chargeback).
    case disputeWon = "dispute_won"
    /// Stripe `charge.dispute.closed` with status lost.
    case disputeLost = "dispute_lost"
    /// PayPal `PAYMENT.CAPTURE.REVERSED`: a chargeback or reversal took the money back.
    case reversed
}

/// A verified provider event about one payment. Natural key: `payment-event:<provider>:<eventId>`.
///
/// `userId` and `package` are what the event itself carries (Stripe metadata, PayPal custom_id);
/// empty when it carries none, in which case the payment's purchase (if any) names them.
public struct PaymentEventRequest: Sendable, Codable, Equatable {
    public var paymentMethod: PaymentMethod
    public var eventId: String
    /// The purchase's paymentId: Stripe's payment intent id, PayPal's capture id.
    public var paymentId: String
    public var kind: PaymentEventKind
    public var userId: String
    public var package: String
    /// The amount the payment collected, in cents (0 when the event does not say).
    public var amountCents: Int64
    /// For `refunded`: the total refunded so far, in cents (Stripe's `amount_refunded`, PayPal's
    /// `total_refunded_amount`); 0 when the event does not say.
    public var refundedCents: Int64
    /// For `refunded`: the refund this event is about, when the provider names it (PayPal's refund
    /// id and amount). Counted once per id, so refunds whose events carry no total still add up.
    public var refund: PaymentRefund?

    public init(paymentMethod: PaymentMethod, eventId: String, paymentId: String, kind: PaymentEventKind,
                userId: String = "", package: String = "", amountCents: Int64 = 0, refundedCents: Int64 = 0,
                refund: PaymentRefund? = nil) {
        self.paymentMethod = paymentMethod
        self.eventId = eventId
        self.paymentId = paymentId
        self.kind = kind
        self.userId = userId
        self.package = package
        self.amountCents = amountCents
        self.refundedCents = refundedCents
        self.refund = refund
    }
}

/// One refund of a payment, as its provider names it.
public struct PaymentRefund: Sendable, Codable, Equatable {
    public var id: String
    public var cents: Int64

    public init(id: String, cents: Int64) {
        self.id = id
        self.cents = cents
    }
}

public enum DisputeState: String, Sendable, Codable, Equatable {
    case none
    case open
    case won
    case lost
}

/// The lifecycle status of a purchase (`credit_purchases.status`).
public enum PurchaseStatus: String, Sendable, Codable, Equatable, CaseIterable {
    /// Events arrived for a payment nobody has bought anything with yet.
    case unclaimed
    /// Waiting for the provider's confirmation (`--require-payment-confirmation`).
    case pending
    case completed
    case failed
    case partiallyRefunded = "partially_refunded"
    case refunded
    /// A dispute is open: its credits are taken back until it is won.
    case disputed
    /// A lost dispute or a provider reversal: the credits stay taken back.
    case reversed

    /// Money was received for it (revenue), whatever happened afterwards.
    public var wasPaid: Bool {
        switch self {
        case .unclaimed, .pending, .failed: false
        default: true
        }
    }
}

/// Everything known about one payment. Each fact only ever grows (a flag set, a larger refunded
/// total, a dispute opened then closed), so merging events is order-independent and idempotent:
/// the same events in any order, any number of times, give the same facts.
public struct PaymentFacts: Sendable, Codable, Equatable {
    /// The purchase endpoint granted at once (the default mode), before any provider event.
    public var grantedOnCall = false
    public var succeeded = false
    public var failed = false
    /// The amount collected, in cents (0: not reported; the package price applies).
    public var amountCents: Int64 = 0
    /// Total refunded, in cents: the largest total a provider reported, or the sum of `refunds`
    /// if that is more.
    public var refundedCents: Int64 = 0
    /// The refunds named one by one (id → cents), at most `Limits.refundsPerPaymentMax`.
    public var refunds: [String: Int64] = [:]
    public var dispute: DisputeState = .none
    public var reversed = false

    public init() {}

    /// The facts with one event merged in. A refund named by id counts once, however often it is
    /// told; each reported total is a lower bound of the true total, and so is the sum of the
    /// refunds named, so the total is the largest of them.
    public func merging(_ kind: PaymentEventKind, amountCents: Int64, refundedCents: Int64,
                        refund: PaymentRefund? = nil) -> PaymentFacts {
        var f = self
        f.amountCents = max(f.amountCents, amountCents)
        switch kind {
        case .succeeded: f.succeeded = true
        case .failed: f.failed = true
        case .refunded:
            if let refund, f.refunds[refund.id] != nil || f.refunds.count < Limits.refundsPerPaymentMax {
                f.refunds[refund.id] = max(f.refunds[refund.id] ?? 0, refund.cents)
            }
            f.refundedCents = max(f.refundedCents, refundedCents, f.refunds.values.reduce(0, +))
        case .disputeOpened: if f.dispute == .none { f.dispute = .open }
        case .disputeWon: if f.dispute != .lost { f.dispute = .won }
        case .disputeLost: f.dispute = .lost
        case .reversed: f.reversed = true
        }
        return f
    }

    /// Paid: the provider confirmed it, or the purchase granted at once and no failure came.
    /// A success beats a failure in either order (a payment intent may fail an attempt, then succeed).
    public var paid: Bool { succeeded || (grantedOnCall && !failed) }
}

/// The rules that turn a payment's facts into credits. Pure.
public enum PaymentRules {
    /// The credits the buyer should hold from this payment now: the package's credits (bonus
    /// included) while paid, less `floor(credits × refunded / paid)` for refunds; none while
    /// unpaid, failed, disputed, lost or reversed.
    public static func target(_ facts: PaymentFacts, package: CreditPackage) -> Int64 {
        guard paid(facts, package: package), !facts.reversed, facts.dispute == .none || facts.dispute == .won else { return 0 }
        return package.totalCredits - takenBackForRefunds(facts, package: package)
    }

    /// `floor(credits × refunded / paid)`, with the refunded amount capped at the amount paid.
    public static func takenBackForRefunds(_ facts: PaymentFacts, package: CreditPackage) -> Int64 {
        let paidCents = paidCents(facts, package: package)
        guard paidCents > 0 else { return 0 }
        let refunded = min(facts.refundedCents, paidCents)
        return Int64(Int128(package.totalCredits) * Int128(refunded) / Int128(paidCents))
    }

    public static func paidCents(_ facts: PaymentFacts, package: CreditPackage) -> Int64 {
        facts.amountCents > 0 ? facts.amountCents : package.priceCents
    }

    /// Paid, and for no less than the package's price (a provider amount below it grants nothing).
    public static func paid(_ facts: PaymentFacts, package: CreditPackage) -> Bool {
        facts.paid && (facts.amountCents == 0 || facts.amountCents >= package.priceCents)
    }

    public static func status(_ facts: PaymentFacts, package: CreditPackage) -> PurchaseStatus {
        if !facts.paid { return facts.failed ? .failed : .pending }
        if !paid(facts, package: package) { return .failed }
        if facts.reversed || facts.dispute == .lost { return .reversed }
        if facts.dispute == .open { return .disputed }
        if facts.refundedCents >= paidCents(facts, package: package) { return .refunded }
        if facts.refundedCents > 0 { return .partiallyRefunded }
        return .completed
    }
}

/// A payment as the ledger keeps it (`credit_purchases`): the purchase, if someone claimed it,
/// the facts, and the credits it has granted and taken back so far.
public struct PaymentState: Sendable, Equatable {
    public var id: Int64?
    public var paymentMethod: PaymentMethod
    public var paymentId: String
    /// nil until a purchase call or an event with metadata names the buyer.
    public var userId: String?
    public var package: CreditPackage?
    public var facts: PaymentFacts
    /// Credits posted to the buyer: the first grant (base + bonus) and any restorations.
    public var creditsGranted: Int64
    /// Credits taken back: refunds, failures, disputes, reversals.
    public var creditsReversed: Int64
    public var createdAtMs: Int64?

    public init(id: Int64? = nil, paymentMethod: PaymentMethod, paymentId: String, userId: String? = nil,
                package: CreditPackage? = nil, facts: PaymentFacts = PaymentFacts(), creditsGranted: Int64 = 0,
                creditsReversed: Int64 = 0, createdAtMs: Int64? = nil) {
        self.id = id
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
        self.userId = userId
        self.package = package
        self.facts = facts
        self.creditsGranted = creditsGranted
        self.creditsReversed = creditsReversed
        self.createdAtMs = createdAtMs
    }

    public var key: PaymentKey { PaymentKey(paymentMethod, paymentId) }
    /// Credits the buyer holds from this payment now.
    public var net: Int64 { creditsGranted - creditsReversed }

    public var status: PurchaseStatus {
        guard let package, userId != nil else { return .unclaimed }
        return PaymentRules.status(facts, package: package)
    }
}

/// (paymentMethod, paymentId): the natural key of a payment.
public struct PaymentKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var paymentMethod: PaymentMethod
    public var paymentId: String

    public init(_ paymentMethod: PaymentMethod, _ paymentId: String) {
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
    }

    public var description: String { "\(paymentMethod.rawValue):\(paymentId)" }
    /// The reference of every journal row this payment posts.
    public var reference: String { "purchase:\(description)" }

    public static func < (a: PaymentKey, b: PaymentKey) -> Bool { a.description < b.description }
}

/// What a provider event did.
public struct PaymentEventReceipt: Sendable, Codable, Equatable {
    public var eventId: String
    public var paymentMethod: PaymentMethod
    public var paymentId: String
    public var event: PaymentEventKind
    /// `pur_<n>` once the payment has a purchase.
    public var purchaseId: String?
    public var userId: String?
    /// The purchase's status after the event (`unclaimed` when nobody bought with it yet).
    public var status: String
    /// Credits this event moved for the buyer: positive granted, negative taken back.
    public var creditsChange: Int64
    /// The buyer's available balance after the event (negative: in arrears).
    public var balance: Int64?

    public init(eventId: String, paymentMethod: PaymentMethod, paymentId: String, event: PaymentEventKind,
                purchaseId: String?, userId: String?, status: String, creditsChange: Int64, balance: Int64?) {
        self.eventId = eventId
        self.paymentMethod = paymentMethod
        self.paymentId = paymentId
        self.event = event
        self.purchaseId = purchaseId
        self.userId = userId
        self.status = status
        self.creditsChange = creditsChange
        self.balance = balance
    }
}
