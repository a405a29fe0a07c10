import Configuration
import Foundation

/// Secrets given as files (a mounted secret): for a secret setting whose `X_FILE` variable is set, the file's text as
/// the setting's value, marked secret. swift-configuration's file providers do not fit this convention: FileProvider
/// reads one file of many keys (JSON, YAML), DirectoryFilesProvider a folder of files named by key, where here each
/// variable names a file of its own. The files are read once, up front, so that an error stops the start; errors
/// name the file, never what is in it.
enum SecretFiles {
    static func provider(_ settings: [ProcessorSetting], environment: [String: String]) throws -> InMemoryProvider {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for setting in settings {
            guard let format = setting.secretFile, let variable = setting.fileEnvironment,
                let path = environment[variable]
            else { continue }
            let text = try read(path, as: format, variable: variable)
            values[AbsoluteConfigKey(ConfigKey(setting.key))] = ConfigValue(.string(text), isSecret: true)
        }
        return InMemoryProvider(name: "secret files", values: values)
    }

    static func read(_ path: String, as format: ProcessorSetting.SecretFile, variable: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProcessorError(.badOption, "\(variable): cannot read '\(path)'")
        }
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        guard !text.isEmpty else { throw ProcessorError(.badOption, "\(variable): '\(path)' is empty") }
        switch format {
        case .oneLine:
            guard !text.contains(where: \.isNewline) else {
                throw ProcessorError(.badOption, "\(variable): '\(path)' must hold one line")
            }
            return text
        case .linePerItem:
            return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: ",")
        }
    }
}
