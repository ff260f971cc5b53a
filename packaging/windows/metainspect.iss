; Inno Setup 6 script for the Windows installer of MetaInspect (one-folder PyInstaller build).
;
; Build (on a Windows build machine with the project set up, Inno Setup 6 installed and iscc on PATH):
;   1. bash packaging/build.sh        (Git Bash; or: .venv\Scripts\python -m PyInstaller --noconfirm
;                                      --distpath dist --workpath build\pyinstaller packaging\metainspect.spec)
;   2. dist\metainspect\metainspect.exe --self-test  &  echo %ERRORLEVEL%     (0 = every check passed)
;   3. iscc /DAppVersion=0.1.0 packaging\windows\metainspect.iss
; Result: dist\MetaInspect-<version>-setup.exe. The installer needs no network: everything, the meta-trained
; model and the pretrained weights included, is in dist\metainspect.
;
; What it does: installs dist\metainspect\ to Program Files (administrator) or to the user's
; %LOCALAPPDATA%\Programs (no administrator; the first page asks, or /CURRENTUSER and /ALLUSERS on the command
; line), adds start-menu entries (the app, the lab command line, uninstall) and an optional desktop shortcut,
; registers an uninstaller (Settings > Apps). Installing a newer version over an older one is the upgrade: the
; old program files are removed first (a one-folder build must not mix versions), while workspaces
; (%LOCALAPPDATA%\MetaInspect) and preferences are user data that neither upgrade nor uninstall touch.
; Silent install for IT: MetaInspect-<version>-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /ALLUSERS
; Silent uninstall: "%ProgramFiles%\MetaInspect\unins000.exe" /VERYSILENT

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "MetaInspect"
#define AppExe "metainspect.exe"
#define BundleDir "..\..\dist\metainspect"

[Setup]
; Keep AppId for ever: it is how a newer installer finds (and upgrades) the installed version.
AppId={{6C1C8E5E-4F1B-4B8C-9A57-5E0B9B7F2A11}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=MetaInspect
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
OutputDir=..\..\dist
OutputBaseFilename=MetaInspect-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
LZMANumBlockThreads=4
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog commandline
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
; A running MetaInspect holds its files open: ask to close it before upgrading or uninstalling.
CloseApplications=yes
RestartApplications=no
SetupLogging=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; Upgrade: remove the previous version's program files so no stale library is loaded beside new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
; metainspect-lab.exe: on Windows the spec builds it as a second, console executable beside the windowed
; metainspect.exe (same Analysis; on Linux it is a link to metainspect, which a windowed exe cannot replace here).
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"
Name: "{group}\{#AppName} Lab (command line)"; Filename: "{cmd}"; Parameters: "/k ""{app}\metainspect-lab.exe"" --help"; WorkingDir: "{userdocs}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only the program folder (files Python may have written there at run time); never the user data.
Type: filesandordirs; Name: "{app}\_internal"
Type: dirifempty; Name: "{app}"
