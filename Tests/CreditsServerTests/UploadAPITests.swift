import CreditsCore
import CreditsStore
import Foundation
import HummingbirdTesting
import Testing

/// `POST /api/uploads` and `GET /api/uploads/{uploadId}` (API.md).
@Suite struct UploadAPITests {
    @Test func queueingAnUploadHoldsItsEstimate() async throws {
        try await withApp { client, store in
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"u1","package":"starter","paymentMethod":"stripe","paymentId":"pi_u1"}"#)
            let body = #"{"uploadId":"file_1","userId":"u1","fileType":"audio","fileCount":3,"features":["premium_encryption","quality_variants"],"sizeBytes":7340032,"priority":"high"}"#
            let queued = try await client.call(.post, "/api/uploads", body: body)
            #expect(queued.status == 202)
            #expect(queued.string("status") == "queued")
            #expect(queued.int("creditsReserved") == 60)
            #expect(queued["sponsored"] as? Bool == false)
            let again = try await client.call(.post, "/api/uploads", body: body)
            #expect(again.status == 202 && again.replayed && again.text == queued.text)

            let balance = try await client.call(.get, "/api/credits/balance?userId=u1")
            #expect(balance.int("balance") == 40 && balance.int("reserved") == 60)

            let got = try await client.call(.get, "/api/uploads/file_1")
            #expect(got.status == 200)
            #expect(got.string("status") == "queued" && got.int("creditsReserved") == 60 && got.int("creditsCharged") == 0)
            #expect(got.string("priority") == "high")

            let short = try await client.call(.post, "/api/uploads",
                body: #"{"uploadId":"file_2","userId":"u1","fileType":"video","sizeBytes":100}"#)
            #expect(short.status == 402 && short.int("required") == 50 && short.int("available") == 40)
            #expect(try await client.call(.get, "/api/uploads/file_2").status == 404)
            #expect(try await store.reconcile().ok)
        }
    }

    @Test func badUploadRequestsNameTheField() async throws {
        try await withApp { client, _ in
            let cases: [(String, String)] = [
                (#"{"uploadId":"f","userId":"u","fileType":"audio","sizeBytes":0}"#, "sizeBytes"),
                (#"{"uploadId":"f","userId":"u","fileType":"audio","sizeBytes":10,"priority":"urgent"}"#, "priority"),
                (#"{"uploadId":"f","userId":"u","fileType":"hologram","sizeBytes":10}"#, "fileType"),
                (#"{"uploadId":"f g","userId":"u","fileType":"audio","sizeBytes":10}"#, "uploadId"),
                (#"{"userId":"u","fileType":"audio","sizeBytes":10}"#, "uploadId"),
            ]
            for (body, field) in cases {
                let r = try await client.call(.post, "/api/uploads", body: body)
                #expect(r.status == 400 && r.string("field") == field, "\(body) → \(r.text)")
            }
            #expect(try await client.call(.get, "/api/uploads/nope", key: nil).status == 401)
        }
    }
}

extension UploadAPITests {
    @Test func aNewCreatorsUploadIsSponsoredOverHTTP() async throws {
        try await withApp { client, _ in
            _ = try await client.call(.post, "/api/users", body: #"{"userId":"fresh"}"#)
            let r = try await client.call(.post, "/api/uploads",
                body: #"{"uploadId":"sp1","userId":"fresh","fileType":"video","sizeBytes":10}"#)
            #expect(r.status == 202 && r["sponsored"] as? Bool == true && r.int("creditsReserved") == 50 && r.int("balance") == 0)
            let got = try await client.call(.get, "/api/uploads/sp1")
            #expect(got["sponsored"] as? Bool == true)
            let s = try await client.call(.get, "/api/credits/sponsorship?userId=fresh")
            #expect(s.int("remainingSponsored") == 4)
        }
    }
}
