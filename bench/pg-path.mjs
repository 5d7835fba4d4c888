// `npm run bench` entry: registers tsx's loader, then runs the TypeScript benchmark in this process.
import { register } from 'tsx/esm/api';
register();
await import('./pg-path.ts');
