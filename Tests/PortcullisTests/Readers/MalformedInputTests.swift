import Foundation
import PortcullisCompiler
import PortcullisSyntax
import Testing

/// Damaged copies of the shipped policies (truncated, a block opener deleted, garbage inserted):
/// every one is rejected with located errors, and none crashes the compiler.
@Suite struct MalformedInputTests {
    struct Variant: CustomTestStringConvertible, Sendable {
        let policy: String
        let kind: String
        let text: String
        var testDescription: String { "\(policy) \(kind)" }
    }

    static let garbage = ["}}} @@@", "publish -> /tcp", "network", "container x { attach", "\"open string", "allow ->"]

    static var variants: [Variant] {
        Repo.shippedPolicies.enumerated().flatMap { index, path -> [Variant] in
            let name = (path as NSString).lastPathComponent
            let text = Repo.read(path)
            var lines = text.components(separatedBy: "\n")
            var result: [Variant] = []
            // Truncated just after the first block opens.
            if let open = text.firstIndex(of: "{") {
                result.append(Variant(policy: name, kind: "truncated", text: String(text[...open]) + "\n    "))
            }
            // A block opener deleted: its settings are left at the top level.
            if let opener = lines.firstIndex(where: { $0.hasSuffix("{") && !$0.contains("}") }) {
                var damaged = lines
                damaged.remove(at: opener)
                result.append(Variant(policy: name, kind: "opener deleted", text: damaged.joined(separator: "\n")))
            }
            // Garbage inserted in the middle.
            lines.insert(garbage[index % garbage.count], at: lines.count / 2)
            result.append(Variant(policy: name, kind: "garbage inserted", text: lines.joined(separator: "\n")))
            return result
        }
    }

    @Test func thereAreAtLeastThirtyVariants() {
        #expect(Self.variants.count >= 30)
    }

    @Test(arguments: variants)
    func variantIsRejectedWithLocatedErrors(_ variant: Variant) throws {
        let directory =
            NSTemporaryDirectory() + "portcullis-malformed-\(getpid())-\(abs(variant.testDescription.hashValue))"
        try FileManager.default.createDirectory(atPath: directory + "/include", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for fragment in (try? FileManager.default.contentsOfDirectory(atPath: Repo.policies + "/include")) ?? [] {
            try FileManager.default.copyItem(
                atPath: Repo.policies + "/include/" + fragment, toPath: directory + "/include/" + fragment)
        }
        let path = directory + "/" + variant.policy
        try variant.text.write(toFile: path, atomically: true, encoding: .utf8)
        let result = Compiler().compile(path, layout: nil, backend: nil)
        guard case .failure(.diagnostics(let diagnostics, let sources)) = result else {
            Issue.record("not rejected with diagnostics: \(result)")
            return
        }
        let lineCount = variant.text.components(separatedBy: "\n").count
        #expect(!diagnostics.isEmpty)
        for diagnostic in diagnostics {
            #expect(diagnostic.range.start.line >= 1 && diagnostic.range.start.column >= 1)
            if diagnostic.range.start.file == path { #expect(diagnostic.range.start.line <= lineCount + 1) }
            #expect(diagnostic.rendered(sources: sources).hasPrefix("\(diagnostic.range.start.file):"))
        }
        // And through the command: exit code 2, errors as file:line:col on stderr.
        let command = run([CommandLineTests.binary, "compile", path])
        #expect(command.status == 2)
        #expect(command.stdout.isEmpty)
        #expect(command.stderr.firstMatch(of: #/^[^\n]+\.policy:\d+:\d+: error: /#) != nil, "\(command.stderr)")
    }

    /// Arbitrary bytes never crash the lexer, parser or checker.
    @Test func randomBytesNeverCrash() {
        var generator = SeededGenerator(seed: 0x5EED)
        let alphabet = Array(
            "network container host {}\n,->\"#/:.0123456789abcdef \t\u{0}\u{7f}é[]allow egress publish 80/tcp")
        for _ in 0..<300 {
            let length = Int.random(in: 0..<200, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            _ = diagnose(["main.policy": text])
        }
    }
}
