namespace PamEventStore.Storage;

/// <summary>
/// <c>.pamstore/</c> (git-ignored): where a developer's machine keeps what the service makes for itself
/// outside Production: the local PostgreSQL cluster, the generated master key and token signing key.
/// </summary>
public sealed class LocalDataDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public static LocalDataDirectory FromConfiguration(IConfiguration configuration) =>
        new(configuration["LocalData:Directory"] ?? ".pamstore");

    public string PathOf(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// Reads a secret file, creating it first (readable by its owner only: these files hold keys) when
    /// it does not exist. Two processes starting at once both end up reading the one that won.
    /// </summary>
    public string ReadOrCreateSecret(string name, Func<string> create)
    {
        var path = PathOf(name);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                using var writer = new StreamWriter(path, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options);
                writer.Write(create());
            }
            catch (IOException) when (File.Exists(path))
            {
            }
        }

        return File.ReadAllText(path);
    }
}
