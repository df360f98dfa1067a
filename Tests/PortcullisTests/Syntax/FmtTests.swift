import Foundation
import PortcullisCompiler
import Testing

/// `portcullis fmt`: prints the canonical form; `--check` names the files that are not in it
/// (exit 1), `--write` rewrites them; input that does not parse exits 2 with its location.
@Suite struct FmtTests {
    static let untidy = "host {  layout docker-1.5 }\nnetwork n {\n\n  bridge br-n\n  subnet 10.0.0.0/24   # lab\n}\n"
    static let canonical =
        "host {\n    layout docker-1.5\n}\n\nnetwork n {\n    bridge br-n\n    subnet 10.0.0.0/24  # lab\n}\n"

    /// `fmt` in-process.
    func format(_ files: [String], _ mode: FormatMode = .print) -> CommandResult {
        inProcess { $0.runFormat(files, mode: mode) }
    }

    /// Writes `text` to a scratch file and returns its path; the caller removes it.
    func scratch(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "portcullis-fmt-\(getpid())-\(UUID().uuidString.prefix(6)).policy"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func printsTheCanonicalForm() throws {
        let path = try scratch(Self.untidy)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = format([path])
        #expect(result.status == 0)
        #expect(result.stdout == Self.canonical)
        #expect(Repo.read(path) == Self.untidy)
    }

    @Test func readsStandardInput() {
        let result = run([CommandLineTests.binary, "fmt", "-"], input: Self.untidy)
        #expect(result.status == 0)
        #expect(result.stdout == Self.canonical)
    }

    @Test func checkNamesFilesNotInCanonicalForm() throws {
        let untidy = try scratch(Self.untidy)
        let canonical = try scratch(Self.canonical)
        defer { for path in [untidy, canonical] { try? FileManager.default.removeItem(atPath: path) } }
        let found = format([canonical, untidy], .check)
        #expect(found.status == 1)
        #expect(found.stdout == untidy + "\n")
        #expect(found.stderr.contains("1 file is not in canonical form"))
        #expect(Repo.read(untidy) == Self.untidy)
        let clean = format([canonical], .check)
        #expect(clean.status == 0 && clean.stdout.isEmpty, "\(clean)")
    }

    @Test func writeRewritesInPlace() throws {
        let path = try scratch(Self.untidy)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let written = format([path], .write)
        #expect(written.status == 0)
        #expect(written.stdout == path + "\n")
        #expect(Repo.read(path) == Self.canonical)
        #expect(format([path], .check).status == 0)
    }

    @Test func shippedPoliciesAreCanonical() {
        let files = PrinterTests.policyFiles.map { Repo.policies + "/" + $0 }
        let result = format(files, .check)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test func badInputExitsTwoWithItsLocation() throws {
        let path = try scratch("host {\n    layout docker-1.5\n    colour blue\n}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = format([path], .check)
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(path):3:5: error: unknown host setting 'colour'"), "\(result.stderr)")
        #expect(format([path + ".missing"]).status == 2)
        // Usage errors are the command line's.
        #expect(run([CommandLineTests.binary, "fmt", "--check", "--write", path]).status == 2)
        #expect(run([CommandLineTests.binary, "fmt", "--write", "-"]).status == 2)
    }
}
