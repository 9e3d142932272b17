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
    /// it does not exist. Two processes starting at once both end up reading the one that won: each
    /// writes its own file whole and renames it into place, so the name never stands for a half-written one.
    /// </summary>
    public string ReadOrCreateSecret(string name, Func<string> create)
    {
        var path = PathOf(name);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path);
            var written = PathOf($".{name}.{Guid.NewGuid():N}");
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                using (var writer = new StreamWriter(written, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options))
                {
                    writer.Write(create());
                }

                File.Move(written, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process's file is in place: it is the one both read.
            }
            finally
            {
                File.Delete(written);
            }
        }

        return File.ReadAllText(path);
    }
}
