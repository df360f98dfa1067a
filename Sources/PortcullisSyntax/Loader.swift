import Foundation
import PortcullisNet

/// A policy with its includes expanded in place, ready for checking.
public struct LoadedPolicy: Sendable {
    /// Statements in file order, each include replaced by the statements of the file it names.
    public let statements: [Statement]
    /// Every file read, for quoting lines in diagnostics.
    public let sources: SourceStore
    public let rootFile: String
}

extension LoadedPolicy {
    /// A policy whose tree is already in memory (built by `import`, placed by
    /// `Printer.printPlaced`), with the text its diagnostics quote. Nothing is read or parsed;
    /// the tree must hold no `include`, which only `PolicyLoader` expands.
    public init(_ syntax: SyntaxFile, text: String) {
        var sources = SourceStore()
        sources.add(file: syntax.path, text: text)
        self.init(statements: syntax.statements, sources: sources, rootFile: syntax.path)
    }
}

extension LoadedPolicy {
    /// The same files with other statements: a policy bound to an inventory.
    public func replacingStatements(_ statements: [Statement]) -> LoadedPolicy {
        LoadedPolicy(statements: statements, sources: sources, rootFile: rootFile)
    }
}

/// Reads a policy file and the files it includes.
///
/// `include` paths are relative to the including file. Each file is read once: a second
/// include of the same file (a diamond) adds nothing, and an include that leads back to a file
/// still being read is reported as a cycle with the whole chain.
public struct PolicyLoader {
    public typealias ReadFile = (String) throws -> String

    /// Loads the policy at `path` with its includes; `-` is stdin (named `<stdin>` in
    /// diagnostics; its includes are relative to the current directory).
    public static func load(
        _ path: String, readFile: @escaping ReadFile = Self.readFile
    ) -> (LoadedPolicy, [Diagnostic]) {
        var loader = PolicyLoader(readFile: readFile)
        let root = URL(fileURLWithPath: path).standardizedFileURL.path
        let displayRoot = path == "-" ? Self.standardInputName : path
        let statements = loader.load(canonical: root, display: displayRoot, includedFrom: Located<String>?.none)
        return (
            LoadedPolicy(statements: statements, sources: loader.sources, rootFile: displayRoot),
            loader.diagnostics
        )
    }

    private let readFile: ReadFile
    private var sources = SourceStore()
    private var diagnostics: [Diagnostic] = []
    private var finished: Set<String> = []
    private var stack: [(canonical: String, display: String)] = []

    private init(readFile: @escaping ReadFile) { self.readFile = readFile }

    static let standardInputName = "<stdin>"

    /// Reads a policy file; the root policy `-` is stdin.
    public static func readFile(_ path: String) throws -> String {
        if (path as NSString).lastPathComponent == "-" && !FileManager.default.fileExists(atPath: path) {
            return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Why a file cannot be read, in the system's words.
    static func whyUnreadable(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        return FileManager.default.isReadableFile(atPath: path) ? "it is not UTF-8 text" : "permission denied"
    }

    private mutating func load(canonical: String, display: String, includedFrom: Located<String>?) -> [Statement] {
        if let cycleStart = stack.firstIndex(where: { $0.canonical == canonical }), let site = includedFrom {
            let chain = (stack[cycleStart...].map(\.display) + [display]).joined(separator: " -> ")
            diagnostics.append(
                Diagnostic(
                    "include cycle: \(chain)", at: site.range, hint: "remove one of the includes in this chain"))
            return []
        }
        if finished.contains(canonical) { return [] }
        let text: String
        do {
            text = try readFile(canonical)
        } catch {
            let at =
                includedFrom?.range ?? SourceRange(start: SourceLocation(file: display, line: 1, column: 1), length: 1)
            diagnostics.append(
                Diagnostic(
                    "cannot read policy file '\(display)': \(Self.whyUnreadable(canonical))", at: at,
                    hint: includedFrom == nil ? "check the path" : "include paths are relative to the including file"))
            return []
        }
        sources.add(file: display, text: text)
        let (syntax, parseDiagnostics) = Parser.parse(text, file: display)
        diagnostics += parseDiagnostics
        stack.append((canonical, display))
        defer {
            stack.removeLast()
            finished.insert(canonical)
        }
        var statements: [Statement] = []
        let directory = URL(fileURLWithPath: canonical).deletingLastPathComponent()
        let displayDirectory = (display as NSString).deletingLastPathComponent
        for statement in syntax.statements {
            guard case .include(let include) = statement else {
                statements.append(statement)
                continue
            }
            let target = include.path
            if target.value.isEmpty || target.value.hasPrefix("/") {
                diagnostics.append(
                    Diagnostic(
                        "include path must be relative", at: target.range,
                        hint: "write the path relative to this file, e.g. include \"common.policy\""))
                continue
            }
            let child = directory.appendingPathComponent(target.value).standardizedFileURL.path
            let childDisplay =
                displayDirectory.isEmpty
                ? target.value : (displayDirectory as NSString).appendingPathComponent(target.value)
            statements += load(canonical: child, display: childDisplay, includedFrom: target)
        }
        return statements
    }
}
