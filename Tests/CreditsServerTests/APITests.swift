import CreditsCore
import CreditsServer
import CreditsStore
import CreditsTestSupport
import Foundation
import GRDB
import Synchronization
import HummingbirdTesting
import Testing

/// The HTTP contract of API.md, through the real router: SEED.md's examples, idempotency, errors, auth.
@Suite struct APITests {
    @Test func seedExamplesOverHTTP() async throws {
        try await withApp { client, _ in
            let bought = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"user_123","package":"creator","paymentMethod":"stripe","paymentId":"pi_1234567890"}"#)
            #expect(bought.status == 201)
            #expect(bought.int("credits") == 550)
            #expect(bought.int("baseCredits") == 500)
            #expect(bought.int("bonusCredits") == 50)
            #expect(bought.int("priceCents") == 2000)
            #expect(bought.int("balance") == 550)
            #expect(bought.string("status") == "completed")
            #expect(bought.string("purchaseId") != nil)

            let estimate = try await client.call(.post, "/api/credits/estimate",
                body: #"{"fileType":"audio","fileCount":3,"features":["premium_encryption","quality_variants"]}"#)
            #expect(estimate.status == 200)
            #expect(estimate.int("credits") == 60)
            #expect(estimate.int("baseCredits") == 45)
            #expect(estimate.int("featureCredits") == 15)

            let five = try await client.call(.post, "/api/credits/estimate", body: #"{"fileType":"audio","fileCount":5}"#)
            #expect(five.int("credits") == 64)
            #expect(five.int("discountCredits") == 11)

            let grant = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"user_8","credits":8,"adjustmentId":"grant-8","reason":"support"}"#)
            #expect(grant.status == 201)
            let short = try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"user_8","credits":15,"fileUploadId":"upload_1","description":"Audio track upload"}"#)
            #expect(short.status == 402)
            #expect(short.string("error") == "INSUFFICIENT_CREDITS")
            #expect(short.int("required") == 15)
            #expect(short.int("available") == 8)
            #expect(short.string("suggestedPackage") == "starter")
            #expect(short.string("message") != nil)
            // An operator taking back more than the balance: the same 402, but no purchase is
            // asked of the creator, so no package is suggested. Nothing changes.
            let clawback = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"user_8","credits":-9,"adjustmentId":"clawback-8","reason":"support"}"#)
            #expect(clawback.status == 402)
            #expect(clawback.string("error") == "INSUFFICIENT_CREDITS")
            #expect(clawback.int("required") == 9)
            #expect(clawback.int("available") == 8)
            #expect(clawback.json["suggestedPackage"] == nil)
            #expect(try await client.call(.get, "/api/credits/balance?userId=user_8").int("balance") == 8)

            let balance = try await client.call(.get, "/api/credits/balance?userId=user_123")
            #expect(balance.status == 200)
            #expect(balance.int("balance") == 550)
            #expect(balance.int("totalPurchased") == 550)
            #expect(balance.int("reserved") == 0)
            #expect(balance.int("totalEarned") == 0)
            #expect(balance.int("totalSpent") == 0)
        }
    }

    @Test func replaysReturnTheOriginalResponseAndConflictsAre409() async throws {
        try await withApp { client, store in
            let body = #"{"userId":"u1","package":"creator","paymentMethod":"paypal","paymentId":"PAY-1"}"#
            let first = try await client.call(.post, "/api/credits/purchase", body: body)
            let second = try await client.call(.post, "/api/credits/purchase", body: body)
            #expect(first.status == 201 && second.status == 201)
            #expect(!first.replayed && second.replayed)
            #expect(first.text == second.text)

            let spend = #"{"userId":"u1","credits":15,"fileUploadId":"up_1","description":"track"}"#
            let s1 = try await client.call(.post, "/api/credits/spend", body: spend, idempotencyKey: "idem-1")
            let s2 = try await client.call(.post, "/api/credits/spend", body: spend, idempotencyKey: "idem-1")
            #expect(s1.status == 201 && s2.status == 201 && s2.replayed && s1.text == s2.text)
            #expect(s1.int("balance") == 535)
            #expect(s1.string("transactionId")?.hasPrefix("txn_") == true)

            let otherBody = #"{"userId":"u1","credits":20,"fileUploadId":"up_2","description":"track"}"#
            let conflict = try await client.call(.post, "/api/credits/spend", body: otherBody, idempotencyKey: "idem-1")
            #expect(conflict.status == 409)
            #expect(conflict.string("error") == "IDEMPOTENCY_CONFLICT")
            let naturalConflict = try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u1","credits":16,"fileUploadId":"up_1"}"#)
            #expect(naturalConflict.status == 409)
            let purchaseConflict = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"u1","package":"pro","paymentMethod":"paypal","paymentId":"PAY-1"}"#)
            #expect(purchaseConflict.status == 409)

            #expect(try await store.balance(userId: "u1").balance == 535)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func aRememberedFailureReplaysAsTheSameFailure() async throws {
        try await withApp { client, _ in
            let body = #"{"userId":"u2","credits":15,"fileUploadId":"up_9"}"#
            let first = try await client.call(.post, "/api/credits/spend", body: body, idempotencyKey: "k9")
            #expect(first.status == 402)
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"u2","package":"starter","paymentMethod":"stripe","paymentId":"pi_2"}"#)
            let again = try await client.call(.post, "/api/credits/spend", body: body, idempotencyKey: "k9")
            #expect(again.status == 402 && again.replayed && again.text == first.text)
        }
    }

    @Test func badInputGetsA4xxNamingTheFieldAndChangesNothing() async throws {
        try await withApp { client, store in
            let cases: [(String, String, Int, String?)] = [
                ("/api/credits/spend", #"{"userId":"u","credits":15,"#, 400, "body"),
                ("/api/credits/spend", "", 400, "body"),
                ("/api/credits/spend", #"[1,2]"#, 400, "body"),
                ("/api/credits/spend", #"{"userId":"u","credits":"15","fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":"u","credits":1.5,"fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":"u","credits":-15,"fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":"u","credits":0,"fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":"u","credits":99999999999999999999,"fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":"u","credits":5}"#, 400, "fileUploadId"),
                // A number that does not fit is named, not a required field decoded before it.
                ("/api/uploads", #"{"uploadId":"f","userId":"u","fileType":"audio","fileCount":1,"sizeBytes":1.5}"#, 400, "sizeBytes"),
                ("/api/uploads", #"{"uploadId":"f","userId":"u","fileType":"audio","sizeBytes":99999999999999999999}"#, 400, "sizeBytes"),
                ("/api/uploads", #"{"uploadId":"f","userId":"u","fileType":"audio","fileCount":2.5,"sizeBytes":10}"#, 400, "fileCount"),
                ("/api/uploads", #"{"uploadId":"f","userId":"u","fileType":"audio","fileCount":"2","sizeBytes":1e30}"#, 400, "fileCount"),
                // Whole numbers are not tried, so thousands of them before the culprit do not hide it.
                ("/api/credits/spend", #"{"a":["# + Array(repeating: "7", count: 2_000).joined(separator: ",") + #"],"userId":"u","credits":1.5,"fileUploadId":"f"}"#, 400, "credits"),
                ("/api/credits/spend", #"{"userId":null,"credits":5,"fileUploadId":"f"}"#, 400, "userId"),
                ("/api/credits/spend", #"{"userId":"a b","credits":5,"fileUploadId":"f"}"#, 400, "userId"),
                ("/api/credits/purchase", #"{"userId":"u","package":"platinum","paymentMethod":"stripe","paymentId":"p"}"#, 400, "package"),
                ("/api/credits/purchase", #"{"userId":"u","package":"starter","paymentMethod":"cash","paymentId":"p"}"#, 400, "paymentMethod"),
                ("/api/credits/estimate", #"{"fileType":"audio","features":["gold"]}"#, 400, "features[0]"),
                ("/api/credits/estimate", #"{"fileType":"hologram"}"#, 400, "fileType"),
                ("/api/credits/estimate", #"{"fileType":"audio","fileCount":0}"#, 400, "fileCount"),
                ("/api/credits/estimate", #"{"fileType":"audio","features":"premium_encryption"}"#, 400, "features"),
                // A field given twice: refused, whichever of the two a decoder would take; also
                // when one is written with escapes, and in an object or array nested anywhere.
                ("/api/credits/spend", #"{"userId":"u","credits":5,"fileUploadId":"f","userId":"v"}"#, 400, "userId"),
                ("/api/credits/spend", #"{"userId":"u","credits":5,"fileUploadId":"f","user\u0049d":"v"}"#, 400, "userId"),
                ("/api/credits/estimate", #"{"fileType":"audio","extra":[{"b":1},{"a":[],"b":{},"a":null}]}"#, 400, "extra[1].a"),
            ]
            for (path, body, status, field) in cases {
                let r = try await client.call(.post, path, body: body)
                #expect(r.status == status, "\(body)")
                #expect(r.string("error") == "VALIDATION_ERROR", "\(body)")
                #expect(r.string("field") == field, "\(body) → \(r.text)")
                #expect(r.string("message")?.isEmpty == false)
            }
            let array = try await client.call(.post, "/api/credits/spend", body: "[1,2]")
            #expect(array.string("message") == "must be a JSON object", "\(array.text)")
            // Valid JSON with a number past any Double: said so, not "is not valid JSON"; a long
            // one is cut. A body that really is not JSON still says so.
            for (number, shown) in [("1e400", "1e400"), ("-1e400", "-1e400"), ("1" + String(repeating: "0", count: 400), String(repeating: "0", count: 23))] {
                let r = try await client.call(.post, "/api/credits/spend", body: #"{"userId":"u","credits":"# + number + #","fileUploadId":"f"}"#)
                #expect(r.status == 400 && r.string("field") == "body", "\(r.text)")
                let message = r.string("message") ?? ""
                #expect(message.hasPrefix("holds a number no field can take: ") && message.contains(shown) && message.count < 70, "\(message)")
            }
            #expect(try await client.call(.post, "/api/credits/spend", body: #"{"userId":"u","credits":15,"#).string("message") == "is not valid JSON")
            let huge = #"{"userId":"u","credits":1,"fileUploadId":"f","description":""# + String(repeating: "x", count: Limits.requestBodyBytesMax) + #""}"#
            let tooLarge = try await client.call(.post, "/api/credits/spend", body: huge)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.string("error") == "PAYLOAD_TOO_LARGE")
            let badKey = try await client.call(.post, "/api/credits/spend",
                body: #"{"userId":"u","credits":1,"fileUploadId":"f"}"#, idempotencyKey: "has spaces")
            #expect(badKey.status == 400 && badKey.string("field") == "Idempotency-Key")

            #expect(try await client.call(.get, "/api/credits/balance").string("field") == "userId")
            #expect(try await client.call(.get, "/api/credits/transactions?userId=u&limit=101").string("field") == "limit")
            #expect(try await client.call(.get, "/api/credits/transactions?userId=u&limit=ten").string("field") == "limit")
            #expect(try await client.call(.get, "/api/credits/transactions?userId=u&cursor=zzz").string("field") == "cursor")
            // A query parameter given twice is refused too, rather than one of the two read.
            #expect(try await client.call(.get, "/api/credits/balance?userId=u&userId=v").string("field") == "userId")
            #expect(try await client.call(.get, "/api/credits/transactions?userId=u&limit=2&limit=3").string("field") == "limit")
            #expect(try await client.call(.get, "/api/credits/transactions?userId=u&cursor=txn_9&cursor=txn_8").string("field") == "cursor")
            // A body the check cannot read through is refused rather than let through: in UTF-16,
            // which the decoder reads, the duplicate above would pass unseen; and past 64 levels.
            let utf16 = #"{"userId":"u","credits":5,"fileUploadId":"f","userId":"v"}"#.data(using: .utf16LittleEndian)!
            let wide = try await client.call(.post, "/api/credits/spend", bytes: Array(utf16))
            #expect(wide.status == 400 && wide.string("field") == "body" && wide.string("message") == "must be JSON in UTF-8", "\(wide.text)")
            let nested = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
            let deep = try await client.call(.post, "/api/credits/estimate", body: #"{"fileType":"audio","x":"# + nested + "}")
            #expect(deep.status == 400 && deep.string("field") == "body" && deep.string("message")?.contains("64 deep") == true, "\(deep.text)")
            // Trailing commas, which the decoder takes and JSON does not allow.
            for body in [#"{"fileType":"audio",}"#, #"{"fileType":"audio","features":["quality_variants",]}"#] {
                let r = try await client.call(.post, "/api/credits/estimate", body: body)
                #expect(r.status == 400 && r.string("field") == "body" && r.string("message") == "is not valid JSON", "\(body) → \(r.text)")
            }
            // The same key in two objects, or inside a string, is no duplicate.
            let distinct = try await client.call(.post, "/api/credits/estimate",
                body: #"{"fileType":"audio","x":{"k":1},"y":{"k":[{"k":2}]},"note":"\"fileType\":\"video\"","fileCount":3}"#)
            #expect(distinct.status == 200 && distinct.int("credits") == 45, "\(distinct.text)")
            #expect(try await store.reconcile().journalRows == 0)
        }
    }

    /// `/readyz` answers 200 while the database answers a read, and 503 once it cannot (the
    /// store closed; on PostgreSQL also the ledger's tables gone), while `/healthz` still says the
    /// process is up. Neither needs a key.
    @Test func readinessFollowsTheDatabase() async throws {
        let dir = NSTemporaryDirectory() + "credits-ready-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await expectReadiness(try SQLiteStore(path: dir + "/ledger.sqlite"), breaking: { try await $0.close() })
        guard PostgresTestDatabase.url != nil else { return }
        try await expectReadiness(try await PostgresStore(url: try await PostgresTestDatabase.freshSchemaURL()), breaking: { try await $0.close() })
        let dropped = try await PostgresStore(url: try await PostgresTestDatabase.freshSchemaURL())
        try await expectReadiness(dropped, breaking: { try await $0.unsafeExecute("DROP TABLE platform_accounts CASCADE") })
        try await dropped.close()
    }

    private func expectReadiness<S: CreditStore>(
        _ store: S, breaking: @Sendable (S) async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let app = buildApplication(
            store: store, configuration: ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey), logger: .init(label: "test"))
        try await app.test(.router) { client in
            let ready = try await client.call(.get, "/readyz", key: nil)
            #expect(ready.status == 200 && ready.string("status") == "ok" && ready.string("database") == "ok",
                    "\(ready.text)", sourceLocation: sourceLocation)
            try await breaking(store)
            let down = try await client.call(.get, "/readyz", key: nil)
            #expect(down.status == 503 && down.string("error") == "UNAVAILABLE", "\(down.text)", sourceLocation: sourceLocation)
            #expect(try await client.call(.get, "/healthz", key: nil).status == 200, sourceLocation: sourceLocation)
        }
    }

    @Test func authenticationAndRouting() async throws {
        try await withApp { client, _ in
            #expect(try await client.call(.get, "/healthz", key: nil).status == 200)
            let none = try await client.call(.get, "/api/credits/balance?userId=u", key: nil)
            #expect(none.status == 401 && none.string("error") == "UNAUTHORIZED")
            let wrong = try await client.call(.get, "/api/credits/balance?userId=u", key: "nope")
            #expect(wrong.status == 401)
            let forbidden = try await client.call(.post, "/api/admin/adjustments", key: serviceKey, body: "{}")
            #expect(forbidden.status == 403 && forbidden.string("error") == "FORBIDDEN")
            #expect(try await client.call(.get, "/api/credits/balance?userId=u", key: adminKey).status == 200)
            let missing = try await client.call(.get, "/api/credits/nothing-here")
            #expect(missing.status == 404 && missing.string("error") == "NOT_FOUND")
            let wrongMethod = try await client.call(.get, "/api/credits/spend")
            #expect(wrongMethod.status == 404 && wrongMethod.string("error") == "NOT_FOUND")
        }
    }

    @Test func transactionsPageOverHTTP() async throws {
        try await withApp { client, _ in
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"u3","package":"pro","paymentMethod":"stripe","paymentId":"pi_3"}"#)
            for i in 0..<5 {
                _ = try await client.call(.post, "/api/credits/spend", body: #"{"userId":"u3","credits":10,"fileUploadId":"t\#(i)"}"#)
            }
            let page1 = try await client.call(.get, "/api/credits/transactions?userId=u3&limit=4")
            let data1 = page1["data"] as? [[String: Any]] ?? []
            #expect(data1.count == 4)
            #expect((data1.first?["credits"] as? NSNumber)?.int64Value == -10)
            #expect((data1.first?["balanceAfter"] as? NSNumber)?.int64Value == 2250)
            let cursor = try #require(page1.string("nextCursor"))
            let page2 = try await client.call(.get, "/api/credits/transactions?userId=u3&limit=4&cursor=\(cursor)")
            let data2 = page2["data"] as? [[String: Any]] ?? []
            #expect(data2.count == 3)
            #expect(page2["nextCursor"] == nil || page2["nextCursor"] is NSNull)
            #expect(data2.last?["type"] as? String == "purchase")
        }
    }

    /// The issue's concurrency case, through HTTP.
    @Test func hundredConcurrentSpendsOverHTTP() async throws {
        try await withApp { client, store in
            _ = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"u4","credits":300,"adjustmentId":"g4","reason":"test"}"#)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        try await client.call(.post, "/api/credits/spend", body: #"{"userId":"u4","credits":15,"fileUploadId":"c\#(i)"}"#).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 201 }.count == 20)
            #expect(statuses.filter { $0 == 402 }.count == 80)
            #expect(try await store.balance(userId: "u4").balance == 0)
            #expect(try await store.reconcile().ok)
        }
    }
}

extension APITests {
    @Test func platformStatsOverHTTP() async throws {
        try await withApp { client, _ in
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"p1","package":"creator","paymentMethod":"stripe","paymentId":"pi_p1"}"#)
            _ = try await client.call(.post, "/api/credits/spend", body: #"{"userId":"p1","credits":50,"fileUploadId":"ps1"}"#)
            let r = try await client.call(.get, "/api/admin/platform-stats?days=30", key: adminKey)
            #expect(r.status == 200)
            #expect(r.string("totalRevenue") == "20.00" && r.int("totalRevenueCents") == 2000)
            #expect(r.string("paymentFees") == "0.88")
            #expect(r.string("grossMargin") == "19.12")
            #expect(r.int("creditsSold") == 550 && r.int("creditsSpent") == 50 && r.int("creditsOutstanding") == 500)
            #expect(r.int("activeUsers") == 1 && r.int("payingUsers") == 1 && r.string("conversionRate") == "100.00")
            #expect(try await client.call(.get, "/api/admin/platform-stats", key: serviceKey).status == 403)
            #expect(try await client.call(.get, "/api/admin/platform-stats?days=0", key: adminKey).string("field") == "days")
        }
    }
}

extension APITests {
    @Test func milestonesOverHTTP() async throws {
        try await withApp { client, _ in
            let body = #"{"userId":"ivy","milestone":"first_creator_coin"}"#
            let first = try await client.call(.post, "/api/credits/milestones", body: body)
            #expect(first.status == 201 && first.string("milestone") == "first_creator_coin")
            #expect(first.int("credits") == 100 && first.int("balance") == 100)
            let again = try await client.call(.post, "/api/credits/milestones", body: body)
            #expect(again.status == 201 && again.replayed && again.text == first.text)
            let bad = try await client.call(.post, "/api/credits/milestones", body: #"{"userId":"ivy","milestone":"viral"}"#)
            #expect(bad.status == 400 && bad.string("field") == "milestone")
            let balance = try await client.call(.get, "/api/credits/balance?userId=ivy")
            #expect(balance.int("balance") == 100 && balance.int("totalEarned") == 100)
        }
    }
}

extension APITests {
    @Test func usersAndSponsorshipOverHTTP() async throws {
        try await withApp { client, _ in
            let unknown = try await client.call(.get, "/api/credits/sponsorship?userId=new_1")
            #expect(unknown.status == 200 && unknown["eligible"] as? Bool == false && unknown.string("reason") == "not_registered")
            let registered = try await client.call(.post, "/api/users", body: #"{"userId":"new_1"}"#)
            #expect(registered.status == 200 && registered["walletAddress"] is NSNull)
            let fresh = try await client.call(.get, "/api/credits/sponsorship?userId=new_1")
            #expect(fresh["eligible"] as? Bool == true && fresh.int("remainingSponsored") == 5 && fresh.string("reason") == "no_wallet")
            let old = try await client.call(.post, "/api/users",
                body: #"{"userId":"old_1","walletAddress":"f1oldwallet","signedUpAt":"2020-01-01T00:00:00Z"}"#)
            #expect(old.status == 200 && old.string("walletAddress") == "f1oldwallet")
            let established = try await client.call(.get, "/api/credits/sponsorship?userId=old_1")
            #expect(established["eligible"] as? Bool == false && established.string("reason") == "established_creator")
            let badTime = try await client.call(.post, "/api/users", body: #"{"userId":"x","signedUpAt":"yesterday"}"#)
            #expect(badTime.status == 400 && badTime.string("field") == "signedUpAt")
            let badWallet = try await client.call(.post, "/api/users", body: #"{"userId":"x","walletAddress":"has space"}"#)
            #expect(badWallet.status == 400 && badWallet.string("field") == "walletAddress")
        }
    }
}

extension APITests {
    /// SEED.md's createSponsoredUpload example over HTTP: usdValue 0.60, gasValue 0.48.
    @Test func sponsoredUploadsOverHTTP() async throws {
        try await withApp { client, _ in
            _ = try await client.call(.post, "/api/users", body: #"{"userId":"user_123"}"#)
            let body = #"{"userId":"user_123","reason":"new_creator","fileUploadId":"upload_123","creditsCost":15,"usdValue":0.60,"gasValue":0.48}"#
            let r = try await client.call(.post, "/api/credits/sponsored-uploads", body: body)
            #expect(r.status == 201 && r.int("credits") == 15 && r.int("remainingSponsored") == 4)
            let again = try await client.call(.post, "/api/credits/sponsored-uploads", body: body)
            #expect(again.status == 201 && again.replayed)
            let refused = try await client.call(.post, "/api/credits/sponsored-uploads",
                body: #"{"userId":"stranger","fileUploadId":"u9","creditsCost":15}"#)
            #expect(refused.status == 409 && refused.string("error") == "NOT_ELIGIBLE")
            let bad = try await client.call(.post, "/api/credits/sponsored-uploads",
                body: #"{"userId":"user_123","fileUploadId":"u10","creditsCost":15,"usdValue":0.605}"#)
            #expect(bad.status == 400 && bad.string("field") == "usdValue")
        }
    }
}

extension APITests {
    /// `GET /api/credits/lots`: a user's lots, oldest first, a page at a time, each with what it
    /// was granted, what is left, and when it expires (paid credits never do); an expired lot
    /// says so at once, before any sweep. Bad paging is a 400; a user never seen has no lots.
    @Test func creditLotsListedOverHTTP() async throws {
        let t0: Int64 = 1_800_000_000_000
        let now = Mutex(t0)
        try await withApp(clock: WallClock { now.withLock { $0 } }) { client, store in
            let bought = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"lot_l","package":"creator","paymentMethod":"stripe","paymentId":"pi_lots"}"#)
            #expect(bought.status == 201)
            #expect(try await client.call(.post, "/api/credits/spend", body: #"{"userId":"lot_l","credits":60,"fileUploadId":"lot_s"}"#).status == 201)
            now.withLock { $0 += 1_000 }
            #expect(try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lot_l","credits":30,"adjustmentId":"g-lots","reason":"welcome gift"}"#).status == 201)

            func lots(_ query: String) async throws -> (Reply, [[String: Any]]) {
                let r = try await client.call(.get, "/api/credits/lots?userId=lot_l" + query)
                return (r, r["data"] as? [[String: Any]] ?? [])
            }
            func ints(_ rows: [[String: Any]], _ key: String) -> [Int64] { rows.map { ($0[key] as? NSNumber)?.int64Value ?? -1 } }
            let year = 365 * LotRules.dayMs
            let (all, rows) = try await lots("")
            #expect(all.status == 200 && all.string("userId") == "lot_l" && all["nextCursor"] == nil, "\(all.text)")
            #expect(rows.map { $0["category"] as? String } == ["paid", "promotional", "promotional"])
            #expect(rows.map { $0["source"] as? String } == ["purchase:stripe:pi_lots", "purchase:stripe:pi_lots", "adjust:g-lots"])
            #expect(ints(rows, "granted") == [500, 50, 30])
            #expect(ints(rows, "remaining") == [490, 0, 30], "the spend burnt the bonus first")
            #expect(rows.map { $0["expiresAt"] as? String } == [nil, "2028-01-15T08:00:00.000Z", "2028-01-15T08:00:01.000Z"])
            #expect(rows.map { $0["expired"] as? Bool } == [false, false, false])
            let ids = ints(rows, "lotId")
            #expect(ids == ids.sorted() && Set(ids).count == 3)

            let (first, firstRows) = try await lots("&limit=2")
            #expect(ints(firstRows, "lotId") == Array(ids.prefix(2)) && first.string("nextCursor") == "lot_\(ids[1])")
            let (last, lastRows) = try await lots("&limit=2&cursor=lot_\(ids[1])")
            #expect(ints(lastRows, "lotId") == [ids[2]] && last["nextCursor"] == nil)

            now.withLock { $0 = t0 + 1_000 + year }
            let (_, later) = try await lots("")
            #expect(later.map { $0["expired"] as? Bool } == [false, true, true])
            #expect(ints(later, "remaining") == [490, 0, 30], "not swept yet, but unspendable")
            #expect(try await client.call(.get, "/api/credits/balance?userId=lot_l").int("balance") == 490)

            for (query, field) in [("&cursor=txn_1", "cursor"), ("&cursor=lot_x", "cursor"), ("&limit=0", "limit"), ("&limit=101", "limit")] {
                let (bad, _) = try await lots(query)
                #expect(bad.status == 400 && bad.string("error") == "VALIDATION_ERROR" && bad.string("field") == field, "\(query): \(bad.text)")
            }
            let missing = try await client.call(.get, "/api/credits/lots")
            #expect(missing.status == 400 && missing.string("field") == "userId")
            let stranger = try await client.call(.get, "/api/credits/lots?userId=nobody")
            #expect(stranger.status == 200 && (stranger["data"] as? [Any])?.isEmpty == true)
            #expect(try await client.call(.get, "/api/credits/lots?userId=lot_l", key: nil).status == 401)
            #expect(try await store.reconcile().ok)
        }
    }
}

extension APITests {
    /// Lots over HTTP: an operator's grant is promotional unless it says paid; the journal names
    /// the lots a spend burnt (promotional first); a bad category is a 400 that changes nothing.
    @Test func creditLotsOverHTTP() async throws {
        try await withApp { client, store in
            let paid = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lot_u","credits":100,"adjustmentId":"g-paid","reason":"refund of a failed upload","category":"paid"}"#)
            #expect(paid.status == 201)
            let promo = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lot_u","credits":30,"adjustmentId":"g-promo","reason":"welcome gift"}"#)
            #expect(promo.status == 201)
            let bad = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lot_u","credits":5,"adjustmentId":"g-bad","reason":"x","category":"gold"}"#)
            #expect(bad.status == 400 && bad.string("field") == "category")
            // A misspelt field in an operator's request is refused, not dropped: "Category" would
            // have left the default, a promotional grant that expires. Nothing is written.
            let misspelt = try await client.call(.post, "/api/admin/adjustments", key: adminKey,
                body: #"{"userId":"lot_u","credits":5,"adjustmentId":"g-typo","reason":"x","Category":"paid"}"#)
            #expect(misspelt.status == 400 && misspelt.string("field") == "Category", "\(misspelt.text)")
            #expect(misspelt.string("message")?.contains("adjustmentId, category, credits, reason, userId") == true, "\(misspelt.text)")
            _ = try await client.call(.post, "/api/credits/spend", body: #"{"userId":"lot_u","credits":40,"fileUploadId":"lot_s1"}"#)
            let lots = try await store.creditLots(userId: "lot_u")
            #expect(lots.map(\.category) == [.paid, .promotional] && lots.map(\.remaining) == [90, 0])
            let page = try await client.call(.get, "/api/credits/transactions?userId=lot_u&limit=1")
            let entry = (page["data"] as? [[String: Any]])?.first
            let burnt = (entry?["lots"] as? [[String: Any]])?.map { [($0["lotId"] as? NSNumber)?.int64Value ?? 0, ($0["credits"] as? NSNumber)?.int64Value ?? 0] }
            #expect(burnt == [[lots[1].id, 30], [lots[0].id, 10]])
            let balance = try await client.call(.get, "/api/credits/balance?userId=lot_u")
            #expect(balance.int("balance") == 90 && balance.int("expiringSoon") == 0)
            #expect(try await store.reconcile().ok)
        }
    }
}

extension APITests {
    /// A database that cannot take the write (here SQLite locked by another process past the
    /// store's 10 s busy timeout) answers 503 UNAVAILABLE, telling the client to retry, not 500;
    /// nothing is applied, and the same spend sent again once the lock is gone applies once.
    @Test func aLockedDatabaseAnswers503AndTheRetryAppliesOnce() async throws {
        try await withApp { client, store in
            let bought = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"lee","package":"starter","paymentMethod":"stripe","paymentId":"pi_lee"}"#)
            #expect(bought.status == 201)
            // Another connection holds the write lock, on a thread of its own, until told to let go.
            let locker = try DatabaseQueue(path: store.path)
            let locked = DispatchSemaphore(value: 0), letGo = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                try? locker.inDatabase { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    locked.signal()
                    letGo.wait()
                    try db.execute(sql: "ROLLBACK")
                }
                done.signal()
            }
            locked.wait()
            let spend = #"{"userId":"lee","credits":30,"fileUploadId":"locked-1"}"#
            let refused = try await client.call(.post, "/api/credits/spend", body: spend)
            #expect(refused.status == 503 && refused.string("error") == "UNAVAILABLE", "\(refused.text)")
            #expect(refused.string("message")?.contains("retry") == true)
            letGo.signal()
            done.wait()
            try locker.close()
            #expect(try await store.balance(userId: "lee").balance == 100)
            let retried = try await client.call(.post, "/api/credits/spend", body: spend)
            #expect(retried.status == 201 && retried.int("balance") == 70, "\(retried.text)")
            let again = try await client.call(.post, "/api/credits/spend", body: spend)
            #expect(again.status == 201 && again.int("balance") == 70 && again.replayed)
            #expect(try await store.reconcile().ok)
        }
    }
}
