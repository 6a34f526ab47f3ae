import CreditsCore
import Foundation
import Testing
@testable import CreditsStore

/// The hand-written outcome encoding must read back, through the synthesized Codable, as exactly
/// the outcome written, including text that needs escaping.
@Suite struct OutcomeCodingTests {
    static let outcomes: [LedgerOutcome] = [
        .purchased(PurchaseReceipt(purchaseId: "pur_1", userId: "user_123", package: "creator", credits: 550, baseCredits: 500,
                                   bonusCredits: 50, priceCents: 2000, paymentMethod: .paypal, paymentId: "PAY-1",
                                   status: "completed", balance: 550)),
        .spent(SpendReceipt(transactionId: "txn_9", userId: "u", credits: 15, fileUploadId: "up.1", balance: Int64.max)),
        .adjusted(AdjustmentReceipt(transactionId: "txn_3", adjustmentId: "a:1", userId: "u@x", credits: -40, balance: 0)),
        .rejected(CreditsError(.insufficientCredits, "15 credits required, 8 available", required: 15, available: 8, suggestedPackage: "starter")),
        .rejected(CreditsError(.validationError, "quote \" backslash \\ newline \n tab \t bell \u{7} é 🎵", field: "description")),
        .rejected(CreditsError(.idempotencyConflict, "")),
        .queued(UploadReceipt(uploadId: "up_1", userId: "u", status: "queued", creditsReserved: 60, sponsored: false, balance: 40)),
        .milestoneGranted(MilestoneReceipt(transactionId: "txn_5", userId: "u", milestone: "plays_1k", credits: 25, balance: 25)),
        .sponsoredUpload(SponsoredUploadReceipt(transactionId: "txn_6", userId: "u", fileUploadId: "f", credits: 15, remainingSponsored: 4, balance: 0)),
        .settled(SettleReceipt(transactionId: "txn_4", uploadId: "up_1", userId: "u", credits: 60, status: "refunded", balance: 100)),
        .purchased(PurchaseReceipt(purchaseId: "pur_2", userId: "u", package: "starter", credits: 100, baseCredits: 100,
                                   bonusCredits: 0, priceCents: 500, paymentMethod: .stripe, paymentId: "pi_2",
                                   status: "completed", balance: -400, arrearsRepaid: 100)),
        .paymentEvent(PaymentEventReceipt(eventId: "evt_1", paymentMethod: .stripe, paymentId: "pi_1", event: .disputeOpened,
                                          purchaseId: "pur_1", userId: "u", status: "disputed", creditsChange: -550, balance: -500)),
        .paymentEvent(PaymentEventReceipt(eventId: "WH-1", paymentMethod: .paypal, paymentId: "CAP1", event: .refunded,
                                          purchaseId: nil, userId: nil, status: "unclaimed", creditsChange: 0, balance: nil)),
        .rejected(CreditsError(.accountInArrears, "owes", owed: 500)),
    ]

    @Test(arguments: outcomes)
    func roundTripsThroughTheSynthesizedDecoder(outcome: LedgerOutcome) throws {
        let text = OutcomeCoding.encode(outcome)
        #expect(try OutcomeCoding.decode(text) == outcome)
        // Same members as Foundation's encoder would write.
        let ours = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary
        let theirs = try JSONSerialization.jsonObject(with: JSONEncoder().encode(outcome)) as? NSDictionary
        #expect(ours == theirs)
    }
}

/// `credit_purchases.refunds` reads back as written, and text it never writes is refused (a row
/// reconcile then reports) rather than read as fewer refunds.
@Suite struct RefundsColumnTests {
    @Test func refundsReadBackAsWrittenAndGarbageIsRefused() {
        let refunds: [String: Int64] = ["RF-b": 700, "RF:a@1": 500, "x": 0]
        let text = PaymentRows.encodeRefunds(refunds)
        #expect(text == "RF-b=700,RF:a@1=500,x=0")
        #expect(PaymentRows.decodeRefunds(text) == refunds)
        #expect(PaymentRows.decodeRefunds("") == [:])
        for bad in ["RF1", "RF1=", "=5", "RF1=-5", "RF1=5,", "RF1=5,RF1=6", "RF 1=5", "RF1=5=6", "RF1=1.5"] {
            #expect(PaymentRows.decodeRefunds(bad) == nil, "\(bad)")
        }
    }
}
