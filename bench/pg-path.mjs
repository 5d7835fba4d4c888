// `npm run bench` entry: registers tsx's loader, then runs the TypeScript benchmark in this process
// (its arguments, e.g. `npm run bench -- --json FILE`, are this process's: process.argv).
import { register } from 'tsx/esm/api';
register();
await import('./pg-path.ts');
