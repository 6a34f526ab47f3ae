import CreditsCore
import Testing

/// Text the service writes into the ledger from others' words (a chain node's error, in a
/// refund's reason) is fitted to the ledger's rules, so that a settlement is never refused for it.
@Suite struct LedgerTextTests {
    func release(_ reason: String) -> LedgerOperation {
        .release(SettleRequest(uploadId: "file_1", userId: "u1", reason: reason))
    }

    /// Cut to 500 UTF-8 bytes on a character boundary (not 500 characters: "é" is two bytes);
    /// control characters other than newline and tab become spaces. The raw text is refused, the
    /// fitted one passes.
    @Test func aReasonIsFittedToTheLedgersTextRules() throws {
        let long = "push failed: " + String(repeating: "é", count: 400)
        #expect(throws: CreditsError.self) { try release(long).validate(catalog: .default) }
        let fitted = LedgerOperation.fittedText(long)
        #expect(fitted.utf8.count == 499 && fitted.hasPrefix("push failed: éé") && long.hasPrefix(fitted))
        try release(fitted).validate(catalog: .default)

        let odd = "node said:\r\n\u{1B}[31mno\u{7}\tline 2\nend"
        #expect(throws: CreditsError.self) { try release(odd).validate(catalog: .default) }
        #expect(LedgerOperation.fittedText(odd) == "node said:  [31mno \tline 2\nend")
        try release(LedgerOperation.fittedText(odd)).validate(catalog: .default)

        let plain = String(repeating: "x", count: Limits.descriptionLengthMax)
        #expect(LedgerOperation.fittedText(plain) == plain)
        #expect(LedgerOperation.fittedText(plain + "y") == plain)
    }
}
